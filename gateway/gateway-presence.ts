import type { Redis } from "ioredis";
import { DEPLOYMENT_DB, gatewayLivenessKey } from "../core/deployment-layout.js";
import type { Logger } from "../core/telemetry/logger.js";
import type { GatewayIdentity } from "./replica-records.js";

/** Renewals per liveness TTL: two may fail (or come late) before the key expires. */
const RENEWALS_PER_TTL = 3;

// SET ... PX returning the value it replaced (SET's GET option needs Redis 6.2).
const RENEW = `
redis.call('SELECT', ${DEPLOYMENT_DB})
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return previous`;

// Deletes the key only while it still names this run (a successor with the same id may own it by now).
const RELEASE = `
redis.call('SELECT', ${DEPLOYMENT_DB})
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * This gateway's liveness key in DB 8 (`clipper-ts:gateway:<id>`, value:
 * its run id), renewed every third of its TTL and at once when Redis comes
 * back. Other gateways, and management, take the DB 3 entries of a gateway
 * whose key does not hold the run that wrote them as stale. A renewal that
 * finds the key missing or naming another run (first start, an outage
 * longer than the TTL, a stall) reports a lapse: the entries may have been
 * swept meanwhile and are to be written again.
 */
export class GatewayPresence {
  readonly #redis: Redis;
  readonly #where: string;
  readonly #log: Logger;
  readonly #identity: GatewayIdentity;
  readonly #ttlMs: number;
  readonly #onRenewed: (lapsed: boolean) => void;
  readonly #onReady = (): void => void this.#renew();
  #timer: NodeJS.Timeout | null = null;
  #failing = false;

  constructor(redis: Redis, where: string, identity: GatewayIdentity, ttlMs: number, log: Logger, onRenewed: (lapsed: boolean) => void) {
    this.#redis = redis;
    this.#where = where;
    this.#identity = identity;
    this.#ttlMs = ttlMs;
    this.#log = log;
    this.#onRenewed = onRenewed;
  }

  /** Renews now and from now on. Listening to "ready" before anyone else writes on reconnect keeps the renewal ahead of the rewrites on the wire. */
  start(): void {
    this.#redis.on("ready", this.#onReady);
    this.#timer = setInterval(() => void this.#renew(), Math.max(1, Math.floor(this.#ttlMs / RENEWALS_PER_TTL)));
    this.#timer.unref();
    if (this.#redis.status === "ready") void this.#renew();
  }

  /** Stops renewing and deletes the key (if it is still ours), so peers need not wait out the TTL. */
  async close(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#redis.off("ready", this.#onReady);
    try {
      await this.#redis.eval(RELEASE, 1, gatewayLivenessKey(this.#identity.gatewayId), this.#identity.run);
    } catch {
      // It expires by itself.
    }
  }

  async #renew(): Promise<void> {
    if (this.#redis.status !== "ready") return;
    let previous: unknown;
    try {
      previous = await this.#redis.eval(RENEW, 1, gatewayLivenessKey(this.#identity.gatewayId), this.#identity.run, String(this.#ttlMs));
    } catch (err) {
      if (!this.#failing) this.#log.warn({ where: this.#where, err: (err as Error).message }, "could not renew the gateway's liveness key; will retry");
      this.#failing = true;
      return;
    }
    this.#failing = false;
    const lapsed = previous !== this.#identity.run;
    if (lapsed && previous !== null) this.#log.warn({ gatewayId: this.#identity.gatewayId, previousRun: previous }, "gateway liveness key named another run (a restart within its TTL; if this repeats, another gateway uses the same --gateway-id); its replicas are written again");
    this.#onRenewed(lapsed);
  }
}
