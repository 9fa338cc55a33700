/**
 * The floor of a gRPC gateway with one ZeroMQ hop per call: a bare grpc-js
 * Predict server (the generated codecs, nothing else) that answers each call
 * (a) at once, (b) on the next event-loop turn (setImmediate), or (c) after
 * one round trip of a 3-frame message to an echo process over zeromq.js,
 * ROUTER ⇄ DEALER, on tcp://127.0.0.1 or on ipc:// (a Unix domain socket).
 * Each mode is driven by h2load with one caller and one call in flight, and
 * reports the mean and p99 time per call and the server's CPU per call (all
 * its threads; the echo process's CPU is not counted). The modes alternate
 * for `--rounds`; the medians are printed as a table.
 *
 * What it isolates: how much of the gateway's added latency at c=1 is the
 * hop itself (threads woken on both sides, the answer leaving from a later
 * event-loop turn than the request arrived in) rather than the gateway's own
 * work (catalog, queue, batch, metrics).
 *
 *   node --import tsx bench/micro/grpc-hop.ts [--seconds 4] [--rounds 3]
 */
import { fork, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as zmq from "zeromq";
import { PredictService, type PredictRequest, type PredictResponse } from "../../gen/clipper/v1/predict.js";
import { runGrpcLoad, warmUpGrpc, writeFrames } from "../lib/h2load.js";
import { readCpuSeconds } from "../lib/proc-status.js";
import { median } from "../lib/stats.js";

type Mode = "none" | "next-turn" | "zmq-tcp" | "zmq-ipc";
const MODES: readonly Mode[] = ["none", "next-turn", "zmq-tcp", "zmq-ipc"];
const SELF = fileURLToPath(import.meta.url);
/** Frames of a small batch message: delimiter-sized header, a protobuf-sized body, one payload. */
const FRAMES = [Buffer.alloc(8, 1), Buffer.alloc(60, 2), Buffer.alloc(24, 3)];

if (process.argv[2] === "--echo") {
  // The worker side: a DEALER that sends every message straight back.
  const dealer = new zmq.Dealer({ linger: 0 });
  dealer.connect(process.argv[3]!);
  await dealer.send([Buffer.from("hello")]);
  process.on("disconnect", () => process.exit(0));
  for await (const frames of dealer) await dealer.send(frames);
} else if (process.argv[2] === "--server") {
  await serve(process.argv[3] as Mode, process.argv[4] ?? "");
} else {
  await main();
}

/** One server process in `mode`; prints `port=N` once it is ready. */
async function serve(mode: Mode, endpoint: string): Promise<void> {
  let hop: ((done: () => void) => void) | null = null;
  if (mode === "zmq-tcp" || mode === "zmq-ipc") {
    const router = new zmq.Router({ linger: 0, mandatory: true });
    await router.bind(endpoint);
    const echo = fork(SELF, ["--echo", router.lastEndpoint!], { execArgv: process.execArgv, stdio: "inherit" });
    process.on("exit", () => echo.kill());
    const waiting: (() => void)[] = [];
    let peer: Buffer | null = null;
    const ready = new Promise<void>((resolve) => {
      void (async () => {
        for await (const [identity, ...frames] of router) {
          if (peer === null) {
            peer = identity!;
            resolve();
            continue;
          }
          if (frames.length > 0) waiting.shift()?.();
        }
      })();
    });
    await ready;
    hop = (done) => {
      waiting.push(done);
      void router.send([peer!, ...FRAMES]);
    };
  }
  let queryId = 0;
  const server = new grpc.Server();
  server.addService(PredictService, {
    predict(_call: grpc.ServerUnaryCall<PredictRequest, PredictResponse>, callback: grpc.sendUnaryData<PredictResponse>) {
      const answer = (): void => callback(null, { queryId: queryId++, output: "0", default: false, defaultExplanation: "", model: "hop", modelVersion: "1" });
      if (mode === "none") answer();
      else if (mode === "next-turn") setImmediate(answer);
      else hop!(answer);
    },
  } as grpc.UntypedServiceImplementation);
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err !== null) throw err;
    process.stdout.write(`port=${port}\n`);
  });
  process.on("SIGTERM", () => process.exit(0));
}

interface Row {
  readonly meanUs: number;
  readonly p99Us: number;
  readonly cpuUsPerCall: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: "string", default: "4" }, rounds: { type: "string", default: "3" } } });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  if (!(seconds > 0 && seconds <= 60) || !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 10)) {
    process.stderr.write("usage: node --import tsx bench/micro/grpc-hop.ts [--seconds 1..60] [--rounds 1..10]\n");
    process.exit(2);
  }
  const dir = mkdtempSync(join(tmpdir(), "grpc-hop-"));
  try {
    const [framePath] = writeFrames(dir, "hop", 1, 0) as [string];
    const rows = new Map<Mode, Row[]>(MODES.map((m) => [m, []]));
    for (let round = 0; round < rounds; round++) {
      for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse()) {
        const endpoint = mode === "zmq-tcp" ? "tcp://127.0.0.1:0" : mode === "zmq-ipc" ? `ipc://${join(dir, "hop.sock")}` : "";
        rows.get(mode)!.push(await measure(mode, endpoint, framePath, seconds, dir));
      }
    }
    const med = (m: Mode, k: keyof Row): number => median(rows.get(m)!.map((r) => r[k]));
    const base = med("none", "meanUs");
    process.stdout.write(`gRPC Predict at c=1, one caller, ${seconds} s per run, medians of ${rounds} rounds (node ${process.version})\n\n`);
    process.stdout.write("| answer | mean µs | added mean µs | p99 µs | server CPU µs/call |\n|---|--:|--:|--:|--:|\n");
    for (const m of MODES) {
      process.stdout.write(`| ${m} | ${med(m, "meanUs").toFixed(0)} | ${(med(m, "meanUs") - base).toFixed(0)} | ${med(m, "p99Us").toFixed(0)} | ${med(m, "cpuUsPerCall").toFixed(0)} |\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts a server in `mode`, warms it up, then drives it for about `seconds` with h2load at c=1. */
async function measure(mode: Mode, endpoint: string, framePath: string, seconds: number, dir: string): Promise<Row> {
  const server = spawn(process.execPath, [...process.execArgv, SELF, "--server", mode, endpoint], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`server (${mode}) did not start`)), 20_000);
      server.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /port=(\d+)/.exec(out);
        if (m !== null) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      server.once("exit", () => reject(new Error(`server (${mode}) exited`)));
    });
    // Count mode sized by a 1 s warm-up, as the main benchmark runs h2load.
    const rate = await warmUpGrpc(port, [framePath], 1);
    const calls = Math.max(100, Math.round(rate * seconds));
    const cpu0 = readCpuSeconds(server.pid!);
    const r = await runGrpcLoad(port, [framePath], calls, seconds * 2, dir);
    // The echo process is the server's child: its CPU is not counted (readCpuSeconds reads one process).
    const cpu = readCpuSeconds(server.pid!) - cpu0;
    if (r.succeeded === 0) throw new Error(`no calls completed (${mode})`);
    return { meanUs: r.meanMs * 1000, p99Us: r.p99Ms * 1000, cpuUsPerCall: (cpu * 1e6) / r.succeeded };
  } finally {
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r).once("error", r));
  }
}
