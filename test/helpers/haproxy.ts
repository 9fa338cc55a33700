import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";
import { eventually, ROOT } from "./processes.js";

/** The shipped configuration, used as it stands. */
export const HAPROXY_CFG = join(ROOT, "deploy/haproxy/haproxy.cfg");

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** haproxy's path: on PATH, or Debian's /usr/sbin (not on a user's PATH). */
export function haproxyBinary(): string {
  for (const dir of (process.env.PATH ?? "").split(":")) if (dir !== "" && existsSync(join(dir, "haproxy"))) return join(dir, "haproxy");
  if (existsSync("/usr/sbin/haproxy")) return "/usr/sbin/haproxy";
  throw new Error("haproxy is not installed (Debian: apt-get install haproxy; scripts/test.sh installs it)");
}

/** One gateway as the configuration names it. */
export interface GatewayAddress {
  readonly grpc: number;
  readonly http: number;
}

/** A state line of `show servers state` for one server: its backend, name and operational state (0 down, 2 up). */
export interface ServerState {
  readonly backend: string;
  readonly server: string;
  readonly up: boolean;
}

/** A real haproxy running deploy/haproxy/haproxy.cfg in front of two gateways on 127.0.0.1. */
export class TestHaproxy {
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly #child: ChildProcess;
  readonly #dir: string;
  output = "";

  private constructor(child: ChildProcess, grpcPort: number, httpPort: number, dir: string) {
    this.#child = child;
    this.grpcPort = grpcPort;
    this.httpPort = httpPort;
    this.#dir = dir;
    child.stdout!.on("data", (d: Buffer) => (this.output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (this.output += d.toString()));
  }

  /** The environment the configuration reads its addresses from. */
  static env(lb: { grpc: number; http: number; statsSocket: string }, gateways: readonly [GatewayAddress, GatewayAddress]): Record<string, string> {
    return {
      CLIPPER_LB_HOST: "127.0.0.1",
      CLIPPER_LB_GRPC_PORT: String(lb.grpc),
      CLIPPER_LB_HTTP_PORT: String(lb.http),
      CLIPPER_LB_STATS_SOCKET: lb.statsSocket,
      ...Object.fromEntries(
        gateways.flatMap((g, i) => [
          [`CLIPPER_GW${i + 1}_HOST`, "127.0.0.1"],
          [`CLIPPER_GW${i + 1}_GRPC_PORT`, String(g.grpc)],
          [`CLIPPER_GW${i + 1}_HTTP_PORT`, String(g.http)],
        ]),
      ),
    };
  }

  /** Starts haproxy with `config` (the shipped one by default) and waits until both its ports accept connections. */
  static async start(gateways: readonly [GatewayAddress, GatewayAddress], config = HAPROXY_CFG): Promise<TestHaproxy> {
    const dir = mkdtempSync(join(tmpdir(), "clipper-haproxy-"));
    const grpc = await freePort();
    const http = await freePort();
    const env = TestHaproxy.env({ grpc, http, statsSocket: join(dir, "stats.sock") }, gateways);
    // -db: stay in the foreground, one process, so SIGKILL of this pid is the end of it.
    const child = spawn(haproxyBinary(), ["-db", "-f", config], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    live.add(child);
    child.once("exit", () => live.delete(child));
    const h = new TestHaproxy(child, grpc, http, dir);
    const up = await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}):\n${h.output}`);
      return (await accepts(grpc)) && (await accepts(http));
    }, 10_000);
    if (!up) {
      await h.stop();
      throw new Error(`haproxy did not listen within 10 s:\n${h.output}`);
    }
    return h;
  }

  /** Each server's state, from the stats socket. */
  async servers(): Promise<ServerState[]> {
    const text = await new Promise<string>((resolve, reject) => {
      const sock = connect(join(this.#dir, "stats.sock"));
      let out = "";
      sock.on("data", (d) => (out += d.toString()));
      sock.on("end", () => resolve(out));
      sock.on("error", reject);
      sock.end("show servers state\n");
    });
    // Version line, then "# be_id be_name srv_id srv_name srv_addr srv_op_state …".
    return text
      .split("\n")
      .filter((l) => /^\d+ /.test(l))
      .map((l) => l.split(" "))
      .map((f) => ({ backend: f[1]!, server: f[3]!, up: f[5] === "2" }));
  }

  /** Whether `server` is up in every backend. */
  async isUp(server: string): Promise<boolean> {
    const states = (await this.servers()).filter((s) => s.server === server);
    return states.length > 0 && states.every((s) => s.up);
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      await new Promise<void>((resolve) => {
        this.#child.once("exit", () => resolve());
        this.#child.kill("SIGKILL");
      });
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
