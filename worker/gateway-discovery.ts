/**
 * Which gateway addresses a worker serves: its --gateway endpoints, each
 * resolved to every address its host name has, again every `everyMs`. A
 * Kubernetes headless Service resolves to one address per gateway pod, so
 * a worker finds every gateway and follows them as they come and go. An
 * endpoint given as an IP address, or a Unix domain socket (`ipc://`), is
 * used as it is, with no lookups.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { formatWorkerEndpoint, type WorkerEndpoint } from "../core/worker-endpoint.js";
import type { Logger } from "../core/telemetry/logger.js";

/**
 * The addresses of one host name: IPv4 ones when it has any (a name such as
 * localhost often has ::1 too, where an IPv4-bound gateway never answers),
 * else all of them.
 */
async function addressesOf(host: string): Promise<string[]> {
  const all = await lookup(host, { all: true, verbatim: true });
  const v4 = all.filter((a) => a.family === 4);
  return [...new Set((v4.length > 0 ? v4 : all).map((a) => a.address))];
}

export class GatewayDiscovery {
  readonly #endpoints: readonly WorkerEndpoint[];
  readonly #everyMs: number;
  readonly #log: Logger;
  readonly #onChange: (addresses: ReadonlySet<string>) => void;
  /** The last good answer for each endpoint, kept when a lookup fails. */
  readonly #known = new Map<WorkerEndpoint, string[]>();
  #current = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(endpoints: readonly WorkerEndpoint[], everyMs: number, log: Logger, onChange: (addresses: ReadonlySet<string>) => void) {
    this.#endpoints = endpoints;
    this.#everyMs = everyMs;
    this.#log = log;
    this.#onChange = onChange;
  }

  /** True when every endpoint is an IP address or a socket path: nothing to look up, now or later. */
  get isStatic(): boolean {
    return this.#endpoints.every((e) => e.kind === "ipc" || isIP(e.host) !== 0);
  }

  /** Resolves once now (reporting the addresses), then every `everyMs` unless static. */
  async start(): Promise<void> {
    await this.#resolve();
    if (this.isStatic || this.#stopped) return;
    this.#timer = setInterval(() => void this.#resolve(), this.#everyMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  async #resolve(): Promise<void> {
    const next = new Set<string>();
    for (const e of this.#endpoints) {
      if (e.kind === "ipc") {
        next.add(formatWorkerEndpoint(e));
        continue;
      }
      let ips: string[];
      if (isIP(e.host) !== 0) ips = [e.host];
      else {
        try {
          ips = await addressesOf(e.host);
          this.#known.set(e, ips);
        } catch (err) {
          ips = this.#known.get(e) ?? [];
          this.#log.warn({ host: e.host, err: (err as Error).message, keeping: ips.length }, "cannot resolve gateway host; keeping its last addresses");
        }
      }
      for (const ip of ips) next.add(formatWorkerEndpoint({ kind: "tcp", host: ip, port: e.port }));
    }
    if (this.#stopped) return;
    const changed = next.size !== this.#current.size || [...next].some((a) => !this.#current.has(a));
    this.#current = next;
    if (changed) this.#onChange(next);
  }
}
