import test from "ava";
import { spawn } from "node:child_process";
import { GATEWAY_PORTS_LINE } from "../../core/ports-line.js";
import { Proc, ROOT } from "../helpers/processes.js";
import { TestRedis } from "../helpers/redis-server.js";

// --exit-with-stdin: a server ends with the process holding its stdin pipe
// (clipper up), and only when asked: run on its own it ignores its stdin.

let redis: TestRedis;
test.before(async () => {
  redis = await TestRedis.start();
});
test.after.always(async () => {
  await redis?.destroy();
});

function gateway(flags: string[]): Proc {
  const child = spawn(process.execPath, ["bin/clipper-gateway.js", "--redis-url", redis.url, "--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", ...flags], {
    cwd: ROOT,
    env: { ...process.env, CLIPPER_LOG_LEVEL: "warn" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  return new Proc(child);
}

test("with --exit-with-stdin, the gateway exits when its stdin pipe closes", async (t) => {
  const g = gateway(["--exit-with-stdin"]);
  t.teardown(() => g.stop("SIGKILL"));
  await g.waitFor(GATEWAY_PORTS_LINE.pattern);
  g.child.stdin!.write("anything written is ignored\n");
  g.child.stdin!.end();
  t.is(await g.waitExit(10_000), 1);
  t.regex(g.output, /standard input closed: the process that started this one is gone; exiting/);
});

test("without it, the end of stdin means nothing: the gateway keeps serving", async (t) => {
  const g = gateway([]);
  t.teardown(() => g.stop("SIGKILL"));
  const m = await g.waitFor(GATEWAY_PORTS_LINE.pattern);
  g.child.stdin!.end();
  await new Promise((r) => setTimeout(r, 1_000));
  t.is(g.child.exitCode, null);
  const http = GATEWAY_PORTS_LINE.read(m).http.port;
  t.is((await fetch(`http://127.0.0.1:${http}/healthz`)).status, 200);
});
