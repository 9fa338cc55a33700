/**
 * bin/launch.js: the bins run dist/ only while it is newer than every
 * build input, and the TypeScript sources through tsx otherwise; a gateway
 * built by scripts/build.mjs serves from dist/ alone. Everything happens in
 * temporary copies, so the checkout's own mtimes and dist/ are never touched.
 */
import test from "ava";
import { execFile, spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { GATEWAY_HEAP_GROWING_PERCENT, GATEWAY_SEMI_SPACE_MIB, gatewayNodeFlags } from "../../core/gateway-heap.js";
import { GATEWAY_PORTS_LINE } from "../../core/ports-line.js";
import { eventually, Proc, ROOT } from "../helpers/processes.js";
import { TestRedis } from "../helpers/redis-server.js";

const run = promisify(execFile);

/** What the fake entry points print: which copy ran, with which flags and arguments. */
interface Ran {
  from: "dist" | "source";
  execArgv: string[];
  argv: string[];
}

const REPORT = "console.log(JSON.stringify({ from, execArgv: process.execArgv, argv: process.argv.slice(2) }));\n";
// A type annotation: only tsx can run the source.
const SOURCE_ENTRY = `const from: string = "source";\n${REPORT}`;
const DIST_ENTRY = `const from = "dist";\n${REPORT}`;

/** An hour ago: every input of the fake layout starts there, the stamp a minute later. */
const BASE_S = Date.now() / 1000 - 3600;

function write(root: string, path: string, text: string, mtimeS = BASE_S): void {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
  utimesSync(p, mtimeS, mtimeS);
}

/** A checkout-shaped folder with the real launchers, fake sources and a fake build stamped after them. */
function fakeLayout(): string {
  const root = mkdtempSync(join(tmpdir(), "clipper-launch-"));
  for (const f of ["launch.js", "clipper-gateway.js", "clipper-worker.js"]) cpSync(join(ROOT, "bin", f), join(root, "bin", f));
  symlinkSync(join(ROOT, "node_modules"), join(root, "node_modules"));
  writeFileSync(join(root, "package.json"), '{ "type": "module" }\n');
  write(root, "gateway/main.ts", SOURCE_ENTRY);
  write(root, "worker/main.ts", SOURCE_ENTRY);
  write(root, "core/util.ts", "export const x = 1;\n");
  // The gateway's launcher reads its heap flags from the real module, compiled or not.
  cpSync(join(ROOT, "core/gateway-heap.ts"), join(root, "core/gateway-heap.ts"));
  utimesSync(join(root, "core/gateway-heap.ts"), BASE_S, BASE_S);
  write(root, "dist/core/gateway-heap.js", readFileSync(join(ROOT, "dist/core/gateway-heap.js"), "utf8"));
  write(root, "gen/descriptors.binpb", "");
  write(root, "dist/gateway/main.js", DIST_ENTRY);
  write(root, "dist/worker/main.js", DIST_ENTRY);
  write(root, "dist/.build-stamp", "", BASE_S + 60);
  return root;
}

async function launch(root: string, bin: string, env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  const { stdout } = await run(process.execPath, [join(root, "bin", `${bin}.js`), "--flag", "x"], {
    cwd: root,
    env: { ...process.env, CLIPPER_FROM_SOURCE: "", NODE_OPTIONS: "", ...env },
    timeout: 60_000,
  });
  return JSON.parse(stdout) as Ran;
}

test("a fresh dist/ runs compiled, with the arguments passed through", async (t) => {
  const root = fakeLayout();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const ran = await launch(root, "clipper-worker");
  t.is(ran.from, "dist");
  t.deepEqual(ran.argv, ["--flag", "x"]);
});

test("a source changed after the build's start runs the sources through tsx", async (t) => {
  const root = fakeLayout();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  utimesSync(join(root, "core/util.ts"), BASE_S + 120, BASE_S + 120);
  const ran = await launch(root, "clipper-worker");
  t.is(ran.from, "source");
  t.deepEqual(ran.argv, ["--flag", "x"]);
});

test("a source added in a subfolder, a regenerated descriptor set or an edited tsconfig each make dist/ stale", async (t) => {
  for (const [path, text] of [["gateway/sub/new.ts", "export {};\n"], ["gen/descriptors.binpb", "x"], ["tsconfig.json", "{}\n"]] as const) {
    const root = fakeLayout();
    t.teardown(() => rmSync(root, { recursive: true, force: true }));
    write(root, path, text, BASE_S + 120);
    t.is((await launch(root, "clipper-worker")).from, "source", path);
  }
});

test("files the build does not read (Python stubs, bytecode caches, logs) leave dist/ fresh", async (t) => {
  const root = fakeLayout();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  write(root, "gen/python/clipper/v1/predict_pb2.py", "", BASE_S + 120);
  write(root, "gen/python/__pycache__/x.json", "", BASE_S + 120);
  write(root, "gateway/debug.log", "", BASE_S + 120);
  t.is((await launch(root, "clipper-worker")).from, "dist");
});

test("no stamp (never built, or a build that failed) runs the sources; CLIPPER_FROM_SOURCE=1 forces them", async (t) => {
  const root = fakeLayout();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  t.is((await launch(root, "clipper-worker", { CLIPPER_FROM_SOURCE: "1" })).from, "source");
  rmSync(join(root, "dist/.build-stamp"));
  t.is((await launch(root, "clipper-worker")).from, "source");
});

test("the gateway's heap flags, except those the user chose", (t) => {
  const semi = `--max-semi-space-size=${GATEWAY_SEMI_SPACE_MIB}`;
  const growing = `--heap-growing-percent=${GATEWAY_HEAP_GROWING_PERCENT}`;
  t.deepEqual(gatewayNodeFlags({}, []), [semi, growing]);
  t.deepEqual(gatewayNodeFlags({ NODE_OPTIONS: "--max-semi-space-size=16" }, []), [growing]);
  t.deepEqual(gatewayNodeFlags({ NODE_OPTIONS: "--max_semi_space_size=2 --heap-growing-percent=100" }, []), []);
  t.deepEqual(gatewayNodeFlags({}, ["--cpu-prof", "--max-semi-space-size=4"]), [growing]);
});

test("the gateway launcher re-executes itself with the flag where Node can (process.execve), else leaves the command line alone", async (t) => {
  const root = fakeLayout();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const canExec = typeof (process as { execve?: unknown }).execve === "function";
  const ran = await launch(root, "clipper-gateway");
  t.is(ran.from, "dist");
  t.deepEqual(ran.argv, ["--flag", "x"]);
  t.is(ran.execArgv.includes(`--max-semi-space-size=${GATEWAY_SEMI_SPACE_MIB}`), canExec);
  const own = await launch(root, "clipper-gateway", { NODE_OPTIONS: "--max-semi-space-size=16" });
  t.false(own.execArgv.some((a) => a.startsWith("--max-semi-space-size")));
});

test("a gateway built by scripts/build.mjs serves from dist/ alone; a compiled worker still loads a .ts model", async (t) => {
  // A copy of what the build reads; then the .ts entry points are removed,
  // so only dist/ can start them.
  const root = mkdtempSync(join(tmpdir(), "clipper-build-"));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const p of ["bin", "core", "gateway", "management", "worker", "clients", "gen", "bench/servers", "bench/lib/counter.ts", "scripts/build.mjs", "tsconfig.json", "tsconfig.build.json", "package.json"]) {
    cpSync(join(ROOT, p), join(root, p), { recursive: true, preserveTimestamps: true });
  }
  symlinkSync(join(ROOT, "node_modules"), join(root, "node_modules"));
  await run(process.execPath, ["scripts/build.mjs"], { cwd: root, timeout: 120_000 });
  for (const entry of ["gateway/main.ts", "worker/main.ts", "clients/cli/clipper.ts"]) rmSync(join(root, entry));

  // dist/bin/ is where compiled code (clients/cli/up.ts, management/worker-spec.ts) looks for the bins.
  const { stdout } = await run(process.execPath, [join(root, "dist/bin/clipper.js"), "--help"], { cwd: root, timeout: 60_000 });
  t.regex(stdout, /Usage: clipper/);

  const redis = await TestRedis.start();
  t.teardown(() => redis.destroy());
  const gw = new Proc(
    spawn(process.execPath, [join(root, "bin/clipper-gateway.js"), "--redis-url", redis.url, "--grpc-port", "0", "--http-port", "0", "--rpc-port", "0"], {
      cwd: root,
      env: { ...process.env, CLIPPER_LOG_LEVEL: "warn", CLIPPER_FROM_SOURCE: "" },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  t.teardown(() => gw.stop("SIGKILL"));
  const ports = GATEWAY_PORTS_LINE.read(await gw.waitFor(GATEWAY_PORTS_LINE.pattern, 60_000));
  const http = ports.http.port;
  // The ports line comes before the catalog's first load; until then every app is 503.
  t.true(await eventually(async () => (await fetch(`http://127.0.0.1:${http}/readyz`)).status === 200, 60_000), "the gateway never became ready");
  // Transcoding reads dist/gen/descriptors.binpb: an unknown app is a JSON 404, not a crash.
  const res = await fetch(`http://127.0.0.1:${http}/v1/apps/nope:predict`, { method: "POST", body: '{"input":{"doubles":[1]}}' });
  t.is(res.status, 404);
  t.is((await fetch(`http://127.0.0.1:${http}/healthz`)).status, 200);

  // The compiled worker registers tsx only for the model it loads.
  const worker = new Proc(
    spawn(
      process.execPath,
      [join(root, "bin/clipper-worker.js"), "--model", "m", "--version", "1", "--input-type", "doubles", "--gateway", `tcp://127.0.0.1:${ports.rpc.port}`, "--module", join(ROOT, "test/fixtures/sum-doubles.ts")],
      { cwd: root, env: { ...process.env, CLIPPER_LOG_LEVEL: "info", CLIPPER_FROM_SOURCE: "" }, stdio: ["ignore", "pipe", "pipe"] },
    ),
  );
  t.teardown(() => worker.stop("SIGKILL"));
  await worker.waitFor(/worker registered/, 60_000);
  t.pass();
});
