/**
 * What scoped tokens, TLS and CURVE on the worker port cost on the
 * gateway's gRPC path: gateways side by side (plaintext without auth,
 * plaintext with a token check, TLS with a token check, CURVE on the worker
 * port alone, and all three), each with its own no-op worker, driven in
 * turn by h2load at each concurrency with distinct inputs; several rounds,
 * the variants alternating, reported as ratios to the plain gateway of the
 * same round (medians over rounds).
 *
 *   node --import tsx bench/security-overhead.ts [--rounds 3] [--seconds 3] [--concurrency 1,64]
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { generateKeyPair, writeKeyPair } from "../core/curve/key-pair.js";
import { makeTestCerts } from "../test/helpers/certs.js";
import { runGrpcLoad, warmUpGrpc, writeFrames, type GrpcTarget } from "./lib/h2load.js";
import { BenchStack } from "./lib/stack.js";
import { ensureTools } from "./lib/tools.js";

const NOOP_MODULE = fileURLToPath(new URL("./models/noop.ts", import.meta.url));
const TOKEN = "bench-token-0123456789abcdef";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "3" }, seconds: { type: "string", default: "3" }, concurrency: { type: "string", default: "1,64" } } });
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const concurrency = values.concurrency.split(",").map(Number);
if (!(rounds >= 1 && seconds > 0 && concurrency.every((c) => Number.isSafeInteger(c) && c >= 1))) {
  process.stderr.write("usage: bench/security-overhead.ts [--rounds N] [--seconds S] [--concurrency LIST]\n");
  process.exit(2);
}
const log = (line: string): void => void process.stderr.write(`[security-overhead] ${line}\n`);
ensureTools(["h2load"], log);

const work = mkdtempSync(join(tmpdir(), "clipper-secbench-"));
const tokens = join(work, "tokens");
writeFileSync(tokens, `predict,read ${TOKEN}\n`);
const certs = makeTestCerts();
const server = certs.issue("bench-gateway");
const auth = ["--auth-tokens", tokens];
const bearer = [`authorization: Bearer ${TOKEN}`];
const gatewayKeys = await writeKeyPair(work, "gateway", generateKeyPair());
const workerPair = generateKeyPair();
const workerKeys = await writeKeyPair(work, "worker", workerPair);
writeFileSync(join(work, "worker-keys"), `${workerPair.publicKey}\n`);
const curve = ["--curve-secret-key", gatewayKeys.secretFile, "--worker-keys", join(work, "worker-keys")];
const workerCurve = ["--curve-secret-key", workerKeys.secretFile, "--gateway-public-key", gatewayKeys.publicFile];
const tls = ["--tls-cert", server.cert, "--tls-key", server.key];

interface Variant {
  readonly name: string;
  readonly args: readonly string[];
  readonly workerArgs: readonly string[];
  readonly target: GrpcTarget;
  stack?: BenchStack;
}
const variants: Variant[] = [
  { name: "plain", args: [], workerArgs: [], target: { tls: false, headers: [] } },
  { name: "token", args: auth, workerArgs: [], target: { tls: false, headers: bearer } },
  { name: "tls+token", args: [...auth, ...tls], workerArgs: [], target: { tls: true, headers: bearer } },
  { name: "curve", args: curve, workerArgs: workerCurve, target: { tls: false, headers: [] } },
  { name: "tls+token+curve", args: [...auth, ...tls, ...curve], workerArgs: workerCurve, target: { tls: true, headers: bearer } },
];

let salt = 1;
const results = new Map<string, { throughput: number; meanMs: number; failed: number }[]>();
try {
  for (const v of variants) {
    v.stack = await BenchStack.start({ profileDir: null, profileIntervalUs: 1000, gatewayArgs: v.args });
    await v.stack.deploy("noop", "noop", { sloMicros: 10_000_000 });
    await v.stack.worker("noop", NOOP_MODULE, v.workerArgs);
    await warmUpGrpc(v.stack.gateway.grpc, writeFrames(work, "noop", 16, salt++), 2, v.target);
  }
  for (let round = 1; round <= rounds; round++) {
    for (const c of concurrency) {
      for (const v of round % 2 === 1 ? variants : [...variants].reverse()) {
        const port = v.stack!.gateway.grpc;
        const rate = await warmUpGrpc(port, writeFrames(work, "noop", c, salt++), 1, v.target);
        const perCaller = Math.max(20, Math.round((rate * seconds) / c));
        const r = await runGrpcLoad(port, writeFrames(work, "noop", c, salt++), perCaller, seconds, work, v.target);
        const key = `${v.name}/${c}`;
        results.set(key, [...(results.get(key) ?? []), { throughput: r.throughput, meanMs: r.meanMs, failed: r.failed }]);
        log(`round ${round} c=${c} ${v.name}: ${r.throughput.toFixed(0)} req/s, mean ${r.meanMs.toFixed(3)} ms, failed ${r.failed}`);
      }
    }
  }
} finally {
  for (const v of variants) await v.stack?.close();
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const lines = ["| variant | c | req/s (median) | throughput ratio to plain | mean ms | added mean ms vs plain | failed calls |", "|---|--:|--:|--:|--:|--:|--:|"];
for (const c of concurrency) {
  const plain = results.get(`plain/${c}`)!;
  for (const v of variants) {
    const runs = results.get(`${v.name}/${c}`)!;
    const ratios = runs.map((r, i) => r.throughput / plain[i]!.throughput);
    const added = runs.map((r, i) => r.meanMs - plain[i]!.meanMs);
    lines.push(
      `| ${v.name} | ${c} | ${median(runs.map((r) => r.throughput)).toFixed(0)} | ${median(ratios).toFixed(2)} | ${median(runs.map((r) => r.meanMs)).toFixed(3)} | ${median(added).toFixed(3)} | ${runs.reduce((n, r) => n + r.failed, 0)} |`,
    );
  }
}
process.stdout.write(`${lines.join("\n")}\n`);
const failed = [...results.values()].flat().some((r) => r.failed > 0);
process.exit(failed ? 1 : 0);
