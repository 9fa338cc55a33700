import type { Redis } from "ioredis";
import type { Catalog } from "./catalog.js";

/** Whether the gateway can serve Predict, and why not. */
export interface ReadinessState {
  readonly ready: boolean;
  /** Empty when ready; otherwise what is missing, for /readyz and the log. */
  readonly reason: string;
}

/**
 * The gateway's readiness to serve clipper.v1.Predict: both Redis
 * connections up and the catalog reconciled since they last came up. While
 * Redis is lost the gateway keeps answering from what it knows, but reports
 * NOT_SERVING, so load balancers and probes see the degraded state.
 * `onChange` hears each flip (gRPC health, /readyz, the log, the gauge).
 */
export class GatewayReadiness {
  readonly #redis: Redis;
  readonly #sub: Redis;
  readonly #catalog: Catalog;
  readonly #where: string;
  readonly #onChange: (state: ReadinessState) => void;
  #state: ReadinessState = { ready: false, reason: "starting" };
  /** Reconciles the catalog still owes after a connection came up. */
  #pending = 0;

  constructor(redis: Redis, sub: Redis, catalog: Catalog, where: string, onChange: (state: ReadinessState) => void) {
    this.#redis = redis;
    this.#sub = sub;
    this.#catalog = catalog;
    this.#where = where;
    this.#onChange = onChange;
  }

  get state(): ReadinessState {
    return this.#state;
  }

  /**
   * Follows both connections. Call after catalog.start(), so that on each
   * 'ready' the catalog has already queued its reconcile and
   * catalog.settled() waits for it.
   */
  start(): void {
    for (const conn of [this.#redis, this.#sub]) {
      conn.on("ready", () => {
        this.#pending++;
        void this.#catalog.settled().then(() => {
          this.#pending--;
          this.#update();
        });
      });
      conn.on("close", () => this.#update());
      conn.on("end", () => this.#update());
    }
    this.#update();
  }

  #update(): void {
    const down = [this.#redis, this.#sub].find((c) => c.status !== "ready");
    const reason =
      down !== undefined ? `Redis at ${this.#where} is unreachable (${down.status})`
      : !this.#catalog.loaded ? "catalog not loaded yet"
      : this.#pending > 0 ? "catalog reconciling after a Redis reconnect"
      : "";
    const ready = reason === "";
    if (ready === this.#state.ready && reason === this.#state.reason) return;
    const flipped = ready !== this.#state.ready;
    this.#state = { ready, reason };
    if (flipped) this.#onChange(this.#state);
  }
}
