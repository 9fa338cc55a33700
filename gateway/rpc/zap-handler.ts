/**
 * The ZAP handler (ZeroMQ RFC 27) of a CURVE worker port: libzmq asks it,
 * for every CURVE handshake on sockets of its context, whether the client's
 * public key may connect. Without a handler any client that knows the
 * gateway's public key would get in, so the worker port also sets
 * zapEnforceDomain: if this handler is not there, handshakes fail.
 */
import { type Context, Router } from "zeromq";
import type { Logger } from "../../core/telemetry/logger.js";
import { OncePer } from "../../core/telemetry/once-per.js";
import type { WorkerAuth } from "./worker-auth.js";

/** Where libzmq sends ZAP requests, in the handler's context. */
const ZAP_ENDPOINT = "inproc://zeromq.zap.01";
/** Refusals are logged at most once per peer address per minute, whatever a peer retries. */
const LOG_EVERY_MS = 60_000;

export class ZapHandler {
  readonly #socket: Router;
  readonly #auth: WorkerAuth;
  readonly #log: Logger;
  readonly #logOnce = new OncePer(LOG_EVERY_MS);
  #loop: Promise<void> | null = null;

  constructor(context: Context, auth: WorkerAuth, log: Logger) {
    this.#socket = new Router({ context, linger: 0 });
    this.#auth = auth;
    this.#log = log;
  }

  /** Binds the handler; must happen before the worker port accepts connections. */
  async start(): Promise<void> {
    await this.#socket.bind(ZAP_ENDPOINT);
    this.#loop = this.#answer();
  }

  async close(): Promise<void> {
    this.#socket.close();
    await this.#loop?.catch(() => {});
  }

  async #answer(): Promise<void> {
    try {
      for await (const frames of this.#socket) {
        // [envelope] [""] [version] [request id] [domain] [address] [identity] [mechanism] [credentials...]
        const [envelope, , version, requestId, , address, , mechanism, key] = frames;
        if (envelope === undefined || version === undefined || requestId === undefined) continue;
        const allowed = mechanism?.toString() === "CURVE" && key !== undefined && this.#auth.knows(key);
        if (!allowed) {
          const peer = address?.toString() ?? "unknown";
          if (this.#logOnce.allow(peer)) this.#log.warn({ peer, mechanism: mechanism?.toString() }, "worker handshake refused: key not in --worker-keys");
        }
        await this.#socket.send([envelope, "", version, requestId, allowed ? "200" : "400", allowed ? "OK" : "key not allowed", "", ""]);
      }
    } catch (err) {
      if (!this.#socket.closed) this.#log.error({ err }, "ZAP handler failed: worker handshakes will fail");
    }
  }
}
