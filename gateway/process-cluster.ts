/**
 * `clipper-gateway --processes N`: one gateway per core of a host. The
 * primary process forks N gateway processes with node:cluster; they share
 * the gRPC and HTTP listening sockets (the primary accepts connections and
 * hands them out in turn, so it balances connections, not calls: a gRPC
 * client holding one HTTP/2 connection talks to one process). Each process
 * has its own queues, batching and worker port (a ZeroMQ ROUTER cannot
 * share one): --rpc-port P gives process i port P + i (0: a free port
 * each), and every worker serves all of them (clipper-worker --gateway
 * takes the list). The primary prints the usual ports line (process 0's
 * worker port) and a line with every worker endpoint (and, with
 * --rpc-ipc-dir, one with every process's socket), forwards SIGHUP,
 * stops the processes on SIGINT/SIGTERM, and restarts one that dies.
 */
import cluster, { type Worker } from "node:cluster";
import { availableParallelism } from "node:os";
import { GATEWAY_CLIPPER_V3_LINE, GATEWAY_PORTS_LINE, formatAddressesLine, formatEndpointsLine, GATEWAY_RPC_ENDPOINTS, GATEWAY_RPC_IPC_ENDPOINTS } from "../core/ports-line.js";
import { watchStdinClose } from "../core/parent-watch.js";
import type { Logger } from "../core/telemetry/logger.js";
import { serveClusterMetrics } from "./cluster-metrics.js";

/** Tells a forked process which one it is. */
export const PROCESS_INDEX_ENV = "CLIPPER_GATEWAY_PROCESS_INDEX";
const LISTENING = "clipper-gateway:listening";

/** The ports one process listens on. */
export interface ProcessPorts {
  readonly grpc: number;
  readonly http: number;
  readonly rpc: number;
  /** `ipc://…` of its worker socket (--rpc-ipc-dir), or null. */
  readonly ipc: string | null;
  readonly clipperV3: number | null;
}

/** How long the primary waits for its processes to stop before killing them, in ms. */
const STOP_GRACE_MS = 15_000;
/** A process that dies is started again after this long, in ms. */
const RESTART_DELAY_MS = 1_000;
/** Processes that die this many times before the first start are a configuration error: the primary gives up. */
const MAX_START_FAILURES = 3;

/** Most gateway processes on one host: a typo must not fork a thousand. */
export const MAX_PROCESSES = 64;

/** `--processes`: 0 means one per core. */
export function processCount(flag: number): number {
  return flag === 0 ? availableParallelism() : flag;
}

/** This process's index when forked by {@link runPrimary}; null when the gateway runs as one process. */
export function processIndex(): number | null {
  if (!cluster.isWorker) return null;
  const n = Number(process.env[PROCESS_INDEX_ENV]);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** In a forked process: tells the primary where it listens (it prints the ports lines). */
export function reportPorts(ports: ProcessPorts): void {
  process.send?.({ type: LISTENING, ports });
}

/** Runs the primary until a signal stops every process; never returns. */
export async function runPrimary(count: number, hosts: { host: string; clipperV3Host: string }, log: Logger, options: { exitWithStdin?: boolean } = {}): Promise<never> {
  serveClusterMetrics();
  const byIndex = new Map<number, Worker>();
  const ports = new Map<number, ProcessPorts>();
  let printed = false;
  let stopping = false;
  let startFailures = 0;

  const fork = (index: number): void => {
    const worker = cluster.fork({ [PROCESS_INDEX_ENV]: String(index) });
    byIndex.set(index, worker);
    worker.on("message", (m: unknown) => {
      const msg = m as { type?: string; ports?: ProcessPorts } | null;
      if (msg?.type !== LISTENING || msg.ports === undefined) return;
      ports.set(index, msg.ports);
      if (!printed && ports.size === count) {
        printed = true;
        printLines(count, ports, hosts);
        log.info({ processes: count, rpc: [...ports.values()].map((p) => p.rpc) }, "gateway processes listening");
      }
    });
    worker.on("exit", (code, signal) => {
      if (byIndex.get(index) !== worker) return;
      byIndex.delete(index);
      if (stopping) return;
      if (!ports.has(index) && ++startFailures >= MAX_START_FAILURES) {
        log.fatal({ index, code, signal }, "gateway process keeps failing to start; stopping");
        void stopAll(1);
        return;
      }
      log.error({ index, code, signal }, "gateway process died; starting it again");
      setTimeout(() => {
        if (!stopping) fork(index);
      }, RESTART_DELAY_MS);
    });
  };

  const stopAll = async (exitCode: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const all = [...byIndex.values()];
    const exited = Promise.all(all.map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once("exit", () => resolve())))));
    for (const w of all) w.process.kill("SIGTERM");
    const timer = setTimeout(() => {
      for (const w of all) if (!w.isDead()) w.process.kill("SIGKILL");
    }, STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
    process.exit(exitCode);
  };

  let signals = 0;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (++signals > 1) {
        for (const w of byIndex.values()) w.process.kill("SIGKILL");
        process.exit(1);
      }
      log.info({ signal }, "stopping the gateway processes");
      void stopAll(0);
    });
  }
  // Reload is per process: each re-reads its tokens, certificates and worker keys.
  process.on("SIGHUP", () => {
    for (const w of byIndex.values()) w.process.kill("SIGHUP");
  });
  if (options.exitWithStdin === true) {
    // The starter is gone (--exit-with-stdin, core/parent-watch.ts): stop at once, taking the processes along.
    watchStdinClose(() => {
      log.warn("standard input closed: the process that started this one is gone; exiting");
      stopping = true;
      for (const w of byIndex.values()) w.process.kill("SIGKILL");
      process.exit(1);
    });
  }
  for (let i = 0; i < count; i++) fork(i);
  return new Promise<never>(() => {});
}

function printLines(count: number, ports: ReadonlyMap<number, ProcessPorts>, hosts: { host: string; clipperV3Host: string }): void {
  const first = ports.get(0)!;
  const at = (port: number) => ({ host: hosts.host, port });
  const lines = [GATEWAY_PORTS_LINE.format({ grpc: at(first.grpc), http: at(first.http), rpc: at(first.rpc) })];
  lines.push(formatEndpointsLine(GATEWAY_RPC_ENDPOINTS, Array.from({ length: count }, (_, i) => at(ports.get(i)!.rpc))));
  if (first.clipperV3 !== null) lines.push(GATEWAY_CLIPPER_V3_LINE.format({ rpc: { host: hosts.clipperV3Host, port: first.clipperV3 } }));
  if (first.ipc !== null) lines.push(formatAddressesLine(GATEWAY_RPC_IPC_ENDPOINTS, Array.from({ length: count }, (_, i) => ports.get(i)!.ipc ?? "")));
  process.stdout.write(`${lines.join("\n")}\n`);
}
