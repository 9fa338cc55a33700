import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";
import { eventually, ROOT } from "./processes.js";

/** The shipped configurations, used as they stand: plaintext, and TLS terminated and opened again to TLS gateways. */
export const HAPROXY_CFG = join(ROOT, "deploy/haproxy/haproxy.cfg");
export const HAPROXY_TLS_CFG = join(ROOT, "deploy/haproxy/haproxy-tls.cfg");

/** TLS settings haproxy-tls.cfg reads. */
export interface HaproxyTls {
  /** HAProxy's certificate chain and key in one PEM file. */
  readonly pem: string;
  /** The CA that signs the gateways' certificates, and the name they carry. */
  readonly gatewayCa: string;
  readonly gatewayName: string;
}

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
  /** haproxy-tls.cfg's one TLS port (gRPC and HTTPS). */
  readonly tlsPort: number;
  readonly #child: ChildProcess;
  readonly #dir: string;
  output = "";

  private constructor(child: ChildProcess, ports: { grpc: number; http: number; tls: number }, dir: string) {
    this.#child = child;
    this.grpcPort = ports.grpc;
    this.httpPort = ports.http;
    this.tlsPort = ports.tls;
    this.#dir = dir;
    child.stdout!.on("data", (d: Buffer) => (this.output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (this.output += d.toString()));
  }

  /** The environment the configuration reads its addresses from. */
  static env(lb: { grpc: number; http: number; tls: number; statsSocket: string }, gateways: readonly [GatewayAddress, GatewayAddress], tls: HaproxyTls | null): Record<string, string> {
    return {
      CLIPPER_LB_HOST: "127.0.0.1",
      CLIPPER_LB_GRPC_PORT: String(lb.grpc),
      CLIPPER_LB_HTTP_PORT: String(lb.http),
      CLIPPER_LB_TLS_PORT: String(lb.tls),
      CLIPPER_LB_STATS_SOCKET: lb.statsSocket,
      ...(tls === null ? {} : { CLIPPER_LB_TLS_PEM: tls.pem, CLIPPER_GW_TLS_CA: tls.gatewayCa, CLIPPER_GW_TLS_NAME: tls.gatewayName }),
      ...Object.fromEntries(
        gateways.flatMap((g, i) => [
          [`CLIPPER_GW${i + 1}_HOST`, "127.0.0.1"],
          [`CLIPPER_GW${i + 1}_GRPC_PORT`, String(g.grpc)],
          [`CLIPPER_GW${i + 1}_HTTP_PORT`, String(g.http)],
        ]),
      ),
    };
  }

  /**
   * Starts haproxy with `config` (haproxy.cfg by default; with `tls`,
   * haproxy-tls.cfg) and waits until the ports it binds accept connections.
   */
  static async start(gateways: readonly [GatewayAddress, GatewayAddress], options: { config?: string; tls?: HaproxyTls } = {}): Promise<TestHaproxy> {
    const tls = options.tls ?? null;
    const config = options.config ?? (tls === null ? HAPROXY_CFG : HAPROXY_TLS_CFG);
    const dir = mkdtempSync(join(tmpdir(), "clipper-haproxy-"));
    const ports = { grpc: await freePort(), http: await freePort(), tls: await freePort() };
    const listening = tls === null ? [ports.grpc, ports.http] : [ports.tls];
    const env = TestHaproxy.env({ ...ports, statsSocket: join(dir, "stats.sock") }, gateways, tls);
    // -db: stay in the foreground, one process, so SIGKILL of this pid is the end of it.
    const child = spawn(haproxyBinary(), ["-db", "-f", config], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    live.add(child);
    child.once("exit", () => live.delete(child));
    const h = new TestHaproxy(child, ports, dir);
    const up = await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}):\n${h.output}`);
      for (const port of listening) if (!(await accepts(port))) return false;
      return true;
    }, 10_000);
    if (!up) {
      await h.stop();
      throw new Error(`haproxy did not listen within 10 s:\n${h.output}`);
    }
    return h;
  }

  /** Each server's state, from the stats socket; none while the socket is not there yet (haproxy renames it into place after binding). */
  async servers(): Promise<ServerState[]> {
    const text = await new Promise<string>((resolve) => {
      const sock = connect(join(this.#dir, "stats.sock"));
      let out = "";
      sock.on("data", (d) => (out += d.toString()));
      sock.on("end", () => resolve(out));
      sock.on("error", () => resolve(""));
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
