import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { awaitOutput } from "./child-output.js";
import { freePort } from "./ports.js";
import { eventually } from "./processes.js";
import { TestRedis } from "./redis-server.js";

/** Every redis-sentinel this process started and has not stopped yet. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** Longest wait for one step of the set-up (a sentinel up, the replica synced, the sentinels acquainted), in ms. */
const STEP_TIMEOUT_MS = 20_000;

/**
 * Redis high availability for one test file, from real parts: a primary
 * redis-server, one replica of it, and three redis-sentinel processes
 * (quorum 2) watching them, all on free ports on 127.0.0.1 with temp dirs.
 * `downAfterMs` is the sentinels' down-after-milliseconds: small, so a
 * failover takes a couple of seconds.
 */
export class SentinelSet {
  static readonly MASTER = "clipper";
  readonly servers: readonly [TestRedis, TestRedis];
  readonly sentinelPorts: readonly number[];
  /** The Redis servers' password (requirepass), or "". */
  readonly password: string;
  readonly #children: ChildProcess[];
  readonly #dir: string;

  private constructor(servers: readonly [TestRedis, TestRedis], sentinelPorts: readonly number[], children: ChildProcess[], dir: string, password: string) {
    this.servers = servers;
    this.sentinelPorts = sentinelPorts;
    this.password = password;
    this.#children = children;
    this.#dir = dir;
  }

  /** The URL the servers take: every sentinel, the master group (and the servers' password). */
  get url(): string {
    const auth = this.password === "" ? "" : `:${encodeURIComponent(this.password)}@`;
    return `redis+sentinel://${auth}${this.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(",")}/${SentinelSet.MASTER}`;
  }

  /** With `password`, both servers require it and replicate with it, and the sentinels use it to reach them. */
  static async start(options: { downAfterMs?: number; sentinels?: number; password?: string } = {}): Promise<SentinelSet> {
    const password = options.password ?? "";
    const auth = password === "" ? [] : ["--masterauth", password];
    const primary = await TestRedis.start({ password, args: auth });
    const replica = await TestRedis.start({ password, args: [...auth, "--replicaof", "127.0.0.1", String(primary.port)] });
    const dir = mkdtempSync(join(tmpdir(), "clipper-sentinel-"));
    const children: ChildProcess[] = [];
    const ports: number[] = [];
    const set = new SentinelSet([primary, replica], ports, children, dir, password);
    try {
      if (!(await eventually(async () => (await info(replica.port, "replication", password)).includes("master_link_status:up"), STEP_TIMEOUT_MS))) {
        throw new Error("the replica did not sync with the primary");
      }
      for (let i = 0; i < (options.sentinels ?? 3); i++) {
        const port = await freePort();
        const conf = join(dir, `sentinel-${i}.conf`);
        writeFileSync(
          conf,
          [
            `port ${port}`,
            "bind 127.0.0.1",
            `dir ${dir}`,
            'logfile ""',
            `sentinel monitor ${SentinelSet.MASTER} 127.0.0.1 ${primary.port} 2`,
            `sentinel down-after-milliseconds ${SentinelSet.MASTER} ${options.downAfterMs ?? 1000}`,
            `sentinel failover-timeout ${SentinelSet.MASTER} 10000`,
            `sentinel parallel-syncs ${SentinelSet.MASTER} 1`,
            ...(password === "" ? [] : [`sentinel auth-pass ${SentinelSet.MASTER} ${password}`]),
            "",
          ].join("\n"),
        );
        children.push(await startSentinel(conf));
        ports.push(port);
      }
      // Until every sentinel knows the replica and the others, a failover could not be agreed on.
      const acquainted = await eventually(async () => {
        for (const port of ports) {
          const m = await sentinelMaster(port);
          if (m["num-slaves"] !== "1" || m["num-other-sentinels"] !== String(ports.length - 1)) return false;
        }
        return true;
      }, STEP_TIMEOUT_MS, 200);
      if (!acquainted) throw new Error("the sentinels did not discover the replica and each other");
      return set;
    } catch (err) {
      await set.destroy();
      throw err;
    }
  }

  /** The port of the server the sentinels name as master now (asked of the first sentinel that answers). */
  async masterPort(): Promise<number | null> {
    for (const port of this.sentinelPorts) {
      const conn = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      try {
        await conn.connect();
        const addr = (await conn.call("SENTINEL", "get-master-addr-by-name", SentinelSet.MASTER)) as [string, string] | null;
        if (addr !== null) return Number(addr[1]);
      } catch {
        // the next one
      } finally {
        conn.disconnect();
      }
    }
    return null;
  }

  /** Asks a sentinel for a failover now (SENTINEL FAILOVER): the primary stays up and is demoted. */
  async failover(): Promise<void> {
    const r = await ask(this.sentinelPorts[0]!, "", "SENTINEL", "failover", SentinelSet.MASTER);
    if (r !== "OK") throw new Error(`SENTINEL FAILOVER answered ${String(r)}`);
  }

  /** Makes the server on `port` a replica of the one on `primaryPort` at once (what the sentinels do on their own, within about 10 s). */
  async replicaOf(port: number, primaryPort: number): Promise<void> {
    const r = await ask(port, this.password, "REPLICAOF", "127.0.0.1", String(primaryPort));
    if (typeof r !== "string" || !r.startsWith("OK")) throw new Error(`REPLICAOF answered ${String(r)}`);
  }

  /** Whether the server on `port` is a replica with its link to the primary up. */
  async replicating(port: number): Promise<boolean> {
    return (await info(port, "replication", this.password)).includes("master_link_status:up");
  }

  async destroy(): Promise<void> {
    for (const child of this.#children) {
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>((resolve) => {
          child.once("exit", () => resolve());
          child.kill("SIGKILL");
        });
      }
    }
    await Promise.all(this.servers.map((s) => s.destroy()));
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

async function startSentinel(conf: string): Promise<ChildProcess> {
  const child = spawn("redis-sentinel", [conf], { stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  child.once("exit", () => live.delete(child));
  await awaitOutput(child, "+monitor master", "redis-sentinel", STEP_TIMEOUT_MS);
  return child;
}

/** One short-lived connection's reply to a command; "" when the server does not answer. */
async function ask(port: number, password: string, ...command: [string, ...string[]]): Promise<unknown> {
  const conn = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, ...(password === "" ? {} : { password }) });
  try {
    await conn.connect();
    return await conn.call(...command);
  } catch {
    return "";
  } finally {
    conn.disconnect();
  }
}

/** INFO <section> of the server on `port`, or "" when it does not answer. */
export async function info(port: number, section: string, password = ""): Promise<string> {
  const r = await ask(port, password, "INFO", section);
  return typeof r === "string" ? r : "";
}

/** A server's CONFIG GET of one parameter, or null when it does not answer. */
export async function configGet(port: number, parameter: string, password = ""): Promise<string | null> {
  const r = await ask(port, password, "CONFIG", "GET", parameter);
  return Array.isArray(r) && typeof r[1] === "string" ? r[1] : null;
}

async function sentinelMaster(port: number): Promise<Record<string, string>> {
  const r = await ask(port, "", "SENTINEL", "master", SentinelSet.MASTER);
  const out: Record<string, string> = {};
  if (Array.isArray(r)) for (let i = 0; i + 1 < r.length; i += 2) out[String(r[i])] = String(r[i + 1]);
  return out;
}
