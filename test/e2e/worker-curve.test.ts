/**
 * The CURVE worker port, end to end: keys made by `clipper keys generate`,
 * a gateway process with --curve-secret-key, --worker-keys and
 * --clipper-v3-port, real worker processes, and raw zeromq peers playing
 * the parts a worker cannot be made to play (a Clipper v3 container, a
 * worker that claims another key).
 */
import test from "ava";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Dealer } from "zeromq";
import { rawKey } from "../../core/curve/curve-keys.js";
import { keyLines } from "../../core/curve/key-pair.js";
import { registrationProof } from "../../core/curve/registration-proof.js";
import { GATEWAY_CLIPPER_V3_LINE } from "../../core/ports-line.js";
import { decodeGatewayMessage, encodeWorkerMessage } from "../../core/wire/native.js";
import type { RegisterWorker } from "../../gen/clipper/v1/heartbeat.js";
import { call } from "../helpers/grpc.js";
import { eventually, spawnBin, workerArgs, type Proc } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { Stack } from "../helpers/stack.js";
import { E, hex } from "../helpers/zmq-frames.js";

const SUM = join(process.cwd(), "test/fixtures/models/sum.js");
const dir = mkdtempSync(join(tmpdir(), "clipper-curve-"));
let stack: Stack;
let v3Port: number;

/** `clipper keys generate NAME --dir dir`, as an operator would run it. */
async function generate(name: string): Promise<{ key: string; pub: string; publicKey: string }> {
  const p = spawnBin("clipper", ["keys", "generate", name, "--dir", dir]);
  const code = await p.waitExit(30_000);
  if (code === "timeout") {
    // It hung in full-suite runs before core/curve/key-pair.ts stopped using
    // Node's key generation (a deadlock in Node 20's crypto); if it ever
    // hangs again, say where it was.
    const where = procState(p.child.pid!);
    await p.stop("SIGKILL");
    throw new Error(`clipper keys generate did not exit in 30 s (${where}): ${p.output}`);
  }
  if (code !== 0) throw new Error(`clipper keys generate failed (exit ${String(code)}): ${p.output}`);
  const pub = join(dir, `${name}.pub`);
  return { key: join(dir, `${name}.key`), pub, publicKey: keyLines(readFileSync(pub, "utf8"))[0]! };
}

/** A process's scheduler state, kernel wait channel and thread count, from /proc. */
function procState(pid: number): string {
  const read = (f: string): string => {
    try {
      return readFileSync(`/proc/${pid}/${f}`, "utf8");
    } catch {
      return "?";
    }
  };
  const status = read("status");
  const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1] ?? "?";
  return `state ${field("State")}, wchan ${read("wchan")}, threads ${field("Threads")}`;
}

type Key = Awaited<ReturnType<typeof generate>>;
let gateway: Key;
let good: Key;
let limited: Key;
let unknown: Key;
const keysFile = join(dir, "worker-keys");

test.before(async () => {
  [gateway, good, limited, unknown] = (await Promise.all(["gateway", "good", "limited", "unknown"].map(generate))) as [Key, Key, Key, Key];
  writeFileSync(keysFile, `# test allow-list\n${good.publicKey}\n${limited.publicKey} a\n`);
  stack = await Stack.start(["--curve-secret-key", gateway.key, "--worker-keys", keysFile, "--clipper-v3-port", "0", "--clipper-v3-models", "noop"]);
  v3Port = GATEWAY_CLIPPER_V3_LINE.read(await stack.gateway.proc.waitFor(GATEWAY_CLIPPER_V3_LINE.pattern)).rpc.port;
  await stack.deploy("a-app", "a", "1", "doubles");
  await stack.deploy("b-app", "b", "1", "doubles");
  await stack.deploy("noop-app", "noop", "1", "doubles");
  await stack.deploy("other-app", "other", "1", "doubles");
});

test.after.always(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

const curveArgs = (k: { key: string }): string[] => ["--gateway-public-key", gateway.pub, "--curve-secret-key", k.key];

function startWorker(model: string, extra: readonly string[]): Proc {
  const p = spawnBin("clipper-worker", workerArgs({ model, version: "1", inputType: "doubles", gateway: `tcp://127.0.0.1:${stack.gateway.rpc}`, module: SUM }, extra), {
    CLIPPER_LOG_LEVEL: "info",
  });
  stack.workers.push(p);
  return p;
}

async function workersOf(model: string): Promise<{ curvePublicKey: string }[]> {
  const r = await call<unknown, { workers: { curvePublicKey: string }[] }>(stack.heartbeat, "listWorkers", { modelName: model });
  if (!r.ok) throw new Error(r.error.message);
  return r.value.workers;
}

async function failures(reason: string): Promise<number> {
  return (await Scrape.of(`http://127.0.0.1:${stack.gateway.http}/metrics`)).value("clipper_worker_auth_failures_total", { reason }) ?? 0;
}

test.serial("a worker whose key is on the allow-list registers and serves, and ListWorkers shows its key", async (t) => {
  const w = startWorker("a", curveArgs(good));
  await w.waitFor(/worker registered/);
  t.deepEqual((await workersOf("a")).map((x) => x.curvePublicKey), [good.publicKey]);
  const r = await stack.http("/a-app/predict", { input: [1, 2, 3.5] });
  t.is(r.status, 200);
  t.is(r.json.output, 6.5);
  t.false(r.json.default);
  await w.stop();
});

test.serial("a key limited to model a serves a, and its registration for b is refused (the worker exits 1)", async (t) => {
  const before = await failures("model_not_allowed");
  const wa = startWorker("a", curveArgs(limited));
  await wa.waitFor(/worker registered/);
  const wb = startWorker("b", curveArgs(limited));
  t.is(await wb.waitExit(30_000), 1);
  t.regex(wb.output, /may not serve model 'b'/);
  t.deepEqual(await workersOf("b"), []);
  t.true((await failures("model_not_allowed")) > before);
  t.is((await stack.http("/a-app/predict", { input: [2, 2] })).json.output, 4);
  await wa.stop();
});

test.serial("a key not on the allow-list never gets past the handshake, and the worker says why", async (t) => {
  const before = await failures("unknown_key");
  const w = startWorker("other", curveArgs(unknown));
  await w.waitFor(/refused this worker's CURVE key/);
  t.true(await eventually(async () => (await failures("unknown_key")) > before));
  t.deepEqual(await workersOf("other"), []);
  const r = await stack.http("/other-app/predict", { input: [1] });
  t.true(r.json.default, "no replica: the app's default");
  await w.stop("SIGKILL");
});

test.serial("a worker without CURVE keys never registers on a CURVE port", async (t) => {
  const before = await failures("handshake");
  const w = startWorker("other", []);
  await w.waitFor(/its worker port may run CURVE/);
  t.true(await eventually(async () => (await failures("handshake")) > before));
  t.deepEqual(await workersOf("other"), []);
  await w.stop("SIGKILL");
});

/** A raw native peer with `own` CURVE keys, registering with the given key and proof. */
async function rawRegistration(own: { key: string; publicKey: string }, routingId: string, claim: Partial<RegisterWorker>): Promise<string> {
  const secret = keyLines(readFileSync(own.key, "utf8"))[0]!;
  const d = new Dealer({ linger: 0, routingId, curveServerKey: gateway.publicKey, curvePublicKey: own.publicKey, curveSecretKey: secret });
  try {
    d.connect(`tcp://127.0.0.1:${stack.gateway.rpc}`);
    const reg: RegisterWorker = {
      modelName: "b",
      modelVersion: "1",
      inputType: "doubles",
      maxBatchSize: 0,
      concurrency: 1,
      description: "",
      curvePublicKey: Buffer.alloc(0),
      registrationProof: Buffer.alloc(0),
      workerId: "",
      ...claim,
    };
    await d.send(encodeWorkerMessage({ kind: { $case: "register", value: reg } }));
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no answer within 10 s")), 10_000).unref());
    const decoded = decodeGatewayMessage(await Promise.race([d.receive(), timeout]));
    if (!decoded.ok) throw new Error(decoded.error);
    const kind = decoded.value.message.kind!;
    return kind.$case === "drain" ? `drain: ${kind.value.reason}` : kind.$case;
  } finally {
    d.close();
  }
}

test.serial("an allowed key cannot register under another key: claiming it without its secret is refused", async (t) => {
  const before = await failures("bad_proof");
  const limitedSecret = rawKey(keyLines(readFileSync(limited.key, "utf8"))[0]!)!;
  // A routing id per connection: a ROUTER ignores a new peer that reuses the id of one it has not yet seen go.
  const ids = ["forged-routing-id-0001", "forged-routing-id-0002", "forged-routing-id-0003"];
  // The limited key's holder claims the unlimited key, proving with its own secret.
  const forged = registrationProof(limitedSecret, rawKey(gateway.publicKey)!, { routingId: Buffer.from(ids[0]!), modelName: "b", modelVersion: "1" });
  t.regex(await rawRegistration(limited, ids[0]!, { curvePublicKey: rawKey(good.publicKey)!, registrationProof: forged }), /^drain: registration refused: .*proof/);
  // No credentials at all.
  t.regex(await rawRegistration(limited, ids[1]!, {}), /^drain: registration refused: .*requires CURVE credentials/);
  t.deepEqual(await workersOf("b"), []);
  t.true((await failures("bad_proof")) >= before + 2);
  // The same peer with its own key and a correct proof is only held to its models.
  const honest = registrationProof(limitedSecret, rawKey(gateway.publicKey)!, { routingId: Buffer.from(ids[2]!), modelName: "a", modelVersion: "1" });
  t.is(await rawRegistration(limited, ids[2]!, { modelName: "a", curvePublicKey: rawKey(limited.publicKey)!, registrationProof: honest }), "registered");
});


test.serial("a Clipper v3 container gets nowhere on the CURVE port and registers on --clipper-v3-port, for the models it allows", async (t) => {
  // On the CURVE port: the plaintext handshake fails, so not even a heartbeat is answered.
  const before = await failures("handshake");
  const onCurve = new Dealer({ linger: 0 });
  t.teardown(() => onCurve.close());
  onCurve.connect(`tcp://127.0.0.1:${stack.gateway.rpc}`);
  void onCurve.send([E, hex("00000000"), Buffer.from("noop"), Buffer.from("1"), Buffer.from("3"), hex("03000000")]).catch(() => {});
  t.true(await eventually(async () => (await failures("handshake")) > before));
  t.deepEqual(await workersOf("noop"), []);

  // A container for a model outside --clipper-v3-models is ignored on the v3 port
  // (however often it asks: it is logged once, not every time).
  const outside = new Dealer({ linger: 0 });
  t.teardown(() => outside.close());
  outside.connect(`tcp://127.0.0.1:${v3Port}`);
  for (let i = 0; i < 3; i++) await outside.send([E, hex("00000000"), Buffer.from("other"), Buffer.from("1"), Buffer.from("3"), hex("03000000")]);

  // On the v3 port: the container registers and answers.
  const d = new Dealer({ linger: 0 });
  t.teardown(() => d.close());
  d.connect(`tcp://127.0.0.1:${v3Port}`);
  await d.send([E, hex("00000000"), Buffer.from("noop"), Buffer.from("1"), Buffer.from("3"), hex("03000000")]);
  t.true(await eventually(async () => (await workersOf("noop")).length === 1));
  const answer = stack.http("/noop-app/predict", { input: [1.0] });
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no request within 10 s")), 10_000).unref());
  const request = (await Promise.race([d.receive(), timeout])).map((f) => f.toString("hex"));
  await d.send([E, hex("01000000"), hex(request[3]!), hex("1000000000000000"), hex("0100000000000000 0200000000000000"), Buffer.from("ok")]);
  t.is((await answer).json.output, "ok");
  t.deepEqual(await workersOf("other"), []);
  t.is(stack.gateway.proc.output.split("container registration refused").length - 1, 1, "three refused registrations, one log line");
});

test.serial("SIGHUP re-reads --worker-keys: a removed key's workers are drained, and it cannot come back", async (t) => {
  const w = startWorker("a", curveArgs(good));
  await w.waitFor(/worker registered/);
  const withGoodKey = async (): Promise<number> => (await workersOf("a")).filter((x) => x.curvePublicKey === good.publicKey).length;
  t.is(await withGoodKey(), 1);
  writeFileSync(keysFile, `${limited.publicKey} a\n`);
  stack.gateway.proc.child.kill("SIGHUP");
  // Drained: it leaves the gateway and exits on its own.
  t.is(await w.waitExit(30_000), 0);
  t.is(await withGoodKey(), 0);
  // A new connection with the removed key is refused at the handshake.
  const again = startWorker("a", curveArgs(good));
  await again.waitFor(/refused this worker's CURVE key/);
  t.is(await withGoodKey(), 0);
  await again.stop("SIGKILL");
});

test.serial("the gateway refuses CURVE without an allow-list, and --clipper-v3-port without CURVE", async (t) => {
  const noList = spawnBin("clipper-gateway", ["--redis-url", stack.redis.url, "--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", "--curve-secret-key", gateway.key]);
  t.is(await noList.waitExit(30_000), 2);
  t.regex(noList.output, /--curve-secret-key and --worker-keys go together/);
  const noCurve = spawnBin("clipper-gateway", ["--redis-url", stack.redis.url, "--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", "--clipper-v3-port", "0"]);
  t.is(await noCurve.waitExit(30_000), 2);
  t.regex(noCurve.output, /--clipper-v3-port is for a CURVE worker port/);
  const notAKey = join(dir, "not-a.key");
  writeFileSync(notAKey, "secret\n");
  const badKey = spawnBin("clipper-gateway", ["--redis-url", stack.redis.url, "--grpc-port", "0", "--http-port", "0", "--rpc-port", "0", "--curve-secret-key", notAKey, "--worker-keys", keysFile]);
  t.is(await badKey.waitExit(30_000), 2);
  t.regex(badKey.output, /--curve-secret-key: .* is not a CURVE secret key/);
  const worker = spawnBin("clipper-worker", ["--model", "a", "--version", "1", "--module", SUM, "--curve-secret-key", good.key]);
  t.is(await worker.waitExit(30_000), 2);
  t.regex(worker.output, /--gateway-public-key and --curve-secret-key go together/);
});
