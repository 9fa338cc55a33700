/**
 * A real zeromq ROUTER playing the gateway's native dialect for worker
 * tests: it records every WorkerMessage and lets a test wait (bounded) for
 * the next one of a kind, and send GatewayMessages to a worker identity.
 */
import { Router } from "zeromq";
import type { GatewayMessage, WorkerMessage } from "../../gen/clipper/v1/heartbeat.js";
import { decodeWorkerMessage, encodeGatewayMessage } from "../../core/wire/native.js";

type Kind = NonNullable<WorkerMessage["kind"]>;
/** The kinds of worker message: "register", "beat", "result", "drain". */
export type KindName = Kind["$case"];
type ValueOf<C extends KindName> = Extract<Kind, { $case: C }>["value"];

/** One worker message as the gateway received it. */
export interface Received<C extends KindName> {
  readonly identity: Buffer;
  readonly value: ValueOf<C>;
  readonly payloads: Buffer[];
}

interface Entry {
  identity: Buffer;
  kind: Kind;
  payloads: Buffer[];
}

interface Waiter {
  match: (e: Entry) => boolean;
  resolve: (e: Entry) => void;
}

/** Default bound on every wait, in ms: generous for a loaded CI box, finite so a failure never hangs. */
export const WAIT_MS = 30_000;

export class FakeGateway {
  /** Malformed frames seen (a test can assert there were none). */
  readonly errors: string[] = [];
  /** Where workers connect, e.g. tcp://127.0.0.1:40123. */
  readonly endpoint: string;
  readonly #router: Router;
  readonly #inbox: Entry[] = [];
  #waiters: Waiter[] = [];
  #sending: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(router: Router, endpoint: string) {
    this.#router = router;
    this.endpoint = endpoint;
    void this.#receiveLoop();
  }

  /**
   * Binds a ROUTER on a free port of 127.0.0.1, or on `endpoint` (a restarted
   * gateway), retrying while the previous socket still holds the port.
   */
  static async start(endpoint = "tcp://127.0.0.1:*"): Promise<FakeGateway> {
    // mandatory: wait instead of silently dropping at the high-water mark (toolchain.md §2).
    const router = new Router({ mandatory: true, linger: 0 });
    for (let attempt = 0; ; attempt++) {
      try {
        await router.bind(endpoint);
        break;
      } catch (err) {
        if (attempt >= 50) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    return new FakeGateway(router, router.lastEndpoint!);
  }

  /**
   * The next unconsumed message of `kind` (optionally also matching
   * `where`), waiting up to `timeoutMs`. Other messages stay queued.
   */
  async next<C extends KindName>(kind: C, where: (r: Received<C>) => boolean = () => true, timeoutMs = WAIT_MS): Promise<Received<C>> {
    const e = await this.#take((e) => e.kind.$case === kind && where(toReceived<C>(e)), `'${kind}'`, timeoutMs);
    return toReceived<C>(e);
  }

  /** The next unconsumed message of any of `kinds`, waiting up to `timeoutMs`. */
  async nextOf(kinds: readonly KindName[], timeoutMs = WAIT_MS): Promise<{ identity: Buffer; kind: KindName }> {
    const e = await this.#take((e) => kinds.includes(e.kind.$case), kinds.join("/"), timeoutMs);
    return { identity: e.identity, kind: e.kind.$case };
  }

  /** Sends a gateway message (plus payload frames) to one worker; sends are serialized (EBUSY). */
  send(identity: Buffer, message: GatewayMessage, payloads: readonly Buffer[] = []): Promise<void> {
    const p = this.#sending.then(() => this.#router.send([identity, ...encodeGatewayMessage(message, payloads)]));
    this.#sending = p.catch(() => {});
    return p;
  }

  /** Accepts the next registration with `replicaId`; resolves with the worker's identity and its RegisterWorker. */
  async acceptRegistration(replicaId: number, heartbeatIntervalMs = 50, evictionTimeoutMs = 5_000): Promise<Received<"register">> {
    const reg = await this.next("register");
    await this.send(reg.identity, { kind: { $case: "registered", value: { replicaId, heartbeatIntervalMs, evictionTimeoutMs } } });
    return reg;
  }

  /** Removes and returns the first message matching `match`, from the inbox or as it arrives, within `timeoutMs`. */
  #take(match: (e: Entry) => boolean, what: string, timeoutMs: number): Promise<Entry> {
    const i = this.#inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.#inbox.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no ${what} message from the worker within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        match,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  close(): void {
    this.#closed = true;
    this.#router.close();
  }

  async #receiveLoop(): Promise<void> {
    try {
      for await (const [identity, ...rest] of this.#router) {
        const decoded = decodeWorkerMessage(rest);
        if (!decoded.ok || decoded.value.message.kind === undefined) {
          this.errors.push(decoded.ok ? "no kind" : decoded.error);
          continue;
        }
        const entry: Entry = { identity: identity!, kind: decoded.value.message.kind, payloads: decoded.value.payloads };
        const waiter = this.#waiters.find((w) => w.match(entry));
        if (waiter === undefined) this.#inbox.push(entry);
        else {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          waiter.resolve(entry);
        }
      }
    } catch (err) {
      if (!this.#closed) throw err;
    }
  }
}

function toReceived<C extends KindName>(e: Entry): Received<C> {
  return { identity: e.identity, value: e.kind.value as ValueOf<C>, payloads: e.payloads };
}

/** Element bytes as the gateway forwards them (typed arrays use the host's order: little-endian on the hosts we test on). */
export const frames = {
  doubles: (xs: number[]): Buffer => Buffer.from(new Float64Array(xs).buffer),
  floats: (xs: number[]): Buffer => Buffer.from(new Float32Array(xs).buffer),
  ints: (xs: number[]): Buffer => Buffer.from(new Int32Array(xs).buffer),
  text: (s: string): Buffer => Buffer.from(s, "utf8"),
};

/** Polls `check` every 10 ms until it is true, failing after `timeoutMs`. */
export async function eventually(check: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
