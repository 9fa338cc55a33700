/**
 * What one gateway⇄worker hop costs by itself: a round trip of a 71-byte,
 * 3-frame message between two processes, over zeromq.js (ROUTER ⇄ DEALER,
 * the native worker RPC's transport) and over a plain node:net TCP socket,
 * measured back to back. Wall time and the sender's CPU time (all its
 * threads) per round trip, median of 3 runs of 5,000 round trips each;
 * for zeromq.js also the synchronous part of send() (the I/O thread is
 * asleep and must be woken) and the CPU per send in a burst of sends (the
 * I/O thread stays busy).
 *
 *   node --import tsx bench/micro/ipc-round-trip.ts
 */
import { fork } from "node:child_process";
import { createServer, connect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import * as zmq from "zeromq";
import { median } from "../lib/stats.js";

const ROUND_TRIPS = 5_000;
const RUNS = 3;
const FRAMES = [Buffer.alloc(23, 7), Buffer.alloc(24, 1), Buffer.alloc(24, 2)];
const MESSAGE_BYTES = FRAMES.reduce((n, f) => n + f.length, 0);
const SELF = fileURLToPath(import.meta.url);

interface Sample {
  readonly wallUs: number;
  readonly cpuUs: number;
  /** zeromq only: time inside the send() call itself, per round trip. */
  readonly syncSendUs?: number;
  /** zeromq only: CPU per send in a burst of sends. */
  readonly burstCpuUs?: number;
}

const BURST_SENDS = 20_000;

async function timeIt(roundTrip: () => Promise<void>): Promise<Sample> {
  for (let i = 0; i < 200; i++) await roundTrip(); // warm-up
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < ROUND_TRIPS; i++) await roundTrip();
  const cpu = process.cpuUsage(c0);
  return { wallUs: ((performance.now() - t0) * 1000) / ROUND_TRIPS, cpuUs: (cpu.user + cpu.system) / ROUND_TRIPS };
}

async function zeromqRun(): Promise<Sample> {
  const router = new zmq.Router({ mandatory: true });
  await router.bind("tcp://127.0.0.1:*");
  const child = fork(SELF, ["zmq-peer", router.lastEndpoint!], { execArgv: ["--import", "tsx"] });
  try {
    const [id] = await router.receive();
    let syncUs = 0;
    const sample = await timeIt(async () => {
      const t0 = performance.now();
      const sent = router.send([id!, ...FRAMES]);
      syncUs += (performance.now() - t0) * 1000;
      await sent;
      await router.receive();
    });
    // The peer echoes; the echoes of the burst are left unread.
    const c0 = process.cpuUsage();
    for (let i = 0; i < BURST_SENDS; i++) await router.send([id!, ...FRAMES]);
    const burst = process.cpuUsage(c0);
    return { ...sample, syncSendUs: syncUs / (ROUND_TRIPS + 200), burstCpuUs: (burst.user + burst.system) / BURST_SENDS };
  } finally {
    child.kill();
    router.close();
  }
}

async function netRun(): Promise<Sample> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const child = fork(SELF, ["net-peer", String((server.address() as { port: number }).port)], { execArgv: ["--import", "tsx"] });
  try {
    const sock = await new Promise<Socket>((r) => server.once("connection", r));
    sock.setNoDelay(true);
    const payload = Buffer.concat(FRAMES);
    let got = 0;
    let waiting: (() => void) | null = null;
    sock.on("data", (d: Buffer) => {
      got += d.length;
      if (got >= MESSAGE_BYTES) {
        got -= MESSAGE_BYTES;
        const w = waiting;
        waiting = null;
        w?.();
      }
    });
    return await timeIt(
      () =>
        new Promise<void>((r) => {
          waiting = r;
          sock.write(payload);
        }),
    );
  } finally {
    child.kill();
    server.close();
  }
}

if (process.argv[2] === "zmq-peer") {
  const dealer = new zmq.Dealer();
  dealer.connect(process.argv[3]!);
  await dealer.send(["hello"]);
  for await (const msg of dealer) await dealer.send(msg);
} else if (process.argv[2] === "net-peer") {
  const sock = connect(Number(process.argv[3]), "127.0.0.1");
  sock.setNoDelay(true);
  let got = 0;
  sock.on("data", (d: Buffer) => {
    got += d.length;
    while (got >= MESSAGE_BYTES) {
      got -= MESSAGE_BYTES;
      sock.write(Buffer.alloc(MESSAGE_BYTES));
    }
  });
} else {
  const results: Record<string, Sample[]> = { zeromq: [], "node:net": [] };
  for (let i = 0; i < RUNS; i++) {
    results.zeromq!.push(await zeromqRun());
    results["node:net"]!.push(await netRun());
  }
  for (const [name, samples] of Object.entries(results)) {
    const wall = median(samples.map((s) => s.wallUs));
    const cpu = median(samples.map((s) => s.cpuUs));
    const extra =
      samples[0]?.syncSendUs === undefined
        ? ""
        : `; send() itself ${median(samples.map((x) => x.syncSendUs!)).toFixed(1)} µs, ${median(samples.map((x) => x.burstCpuUs!)).toFixed(1)} µs CPU per send in a burst`;
    process.stdout.write(`${name.padEnd(9)} round trip ${wall.toFixed(1)} µs wall, ${cpu.toFixed(1)} µs sender CPU (median of ${RUNS} × ${ROUND_TRIPS})${extra}\n`);
  }
  process.exit(0);
}
