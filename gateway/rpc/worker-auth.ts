/**
 * Who may be a worker when the worker port runs CURVE: the allow-list of
 * worker keys (--worker-keys), the gateway's own secret key, and the two
 * checks made with them, at the handshake (ZAP: is the key listed?) and at
 * registration (does the worker hold that key, and may it serve this model?).
 */
import { EventEmitter } from "node:events";
import { readSecretKeyFile } from "../../core/curve/curve-keys.js";
import { verifyRegistrationProof } from "../../core/curve/registration-proof.js";
import { keyAllows, readWorkerKeys, type WorkerKeyList } from "../../core/curve/worker-keys-file.js";
import type { Decoded } from "../../core/decoded.js";
import type { Logger } from "../../core/telemetry/logger.js";

/** Why a worker was turned away; the label of clipper_worker_auth_failures_total. */
export type AuthFailure =
  /** The CURVE handshake failed: a plaintext peer (such as a Clipper container) or a peer with the wrong gateway key. */
  | "handshake"
  /** The key is not on the allow-list (refused by ZAP). */
  | "unknown_key"
  /** A registration without a key or proof, or with a proof that does not verify. */
  | "bad_proof"
  /** The key may not serve the model it registered for. */
  | "model_not_allowed";

/** What a registration presents. */
export interface PresentedCredentials {
  readonly routingId: Buffer;
  readonly modelName: string;
  readonly modelVersion: string;
  readonly publicKey: Uint8Array;
  readonly proof: Uint8Array;
}

export interface WorkerAuthEvents {
  /** The allow-list was replaced: replicas whose key no longer allows their model must go. */
  changed: [];
}

/** The CURVE settings of the worker port and the allow-list in force. */
export class WorkerAuth extends EventEmitter<WorkerAuthEvents> {
  /** The gateway's Z85 secret key, for the ROUTER socket. */
  readonly secretKey: string;
  /** The gateway's Z85 public key, for operators and workers. */
  readonly publicKey: string;
  readonly #rawSecret: Buffer;
  readonly #keysPath: string;
  #keys: WorkerKeyList;

  private constructor(pair: { secretKey: string; publicKey: string; rawSecret: Buffer }, keysPath: string, keys: WorkerKeyList) {
    super();
    this.secretKey = pair.secretKey;
    this.publicKey = pair.publicKey;
    this.#rawSecret = pair.rawSecret;
    this.#keysPath = keysPath;
    this.#keys = keys;
  }

  /** Reads the gateway's secret key and the allow-list; errors name the flag. */
  static async load(secretKeyPath: string, keysPath: string): Promise<Decoded<WorkerAuth>> {
    const pair = await readSecretKeyFile(secretKeyPath);
    if (!pair.ok) return { ok: false, error: `--curve-secret-key: ${pair.error}` };
    const keys = await readWorkerKeys(keysPath);
    if (!keys.ok) return { ok: false, error: `--worker-keys: ${keys.error}` };
    return { ok: true, value: new WorkerAuth(pair.value, keysPath, keys.value) };
  }

  /** How many keys are allowed. */
  get size(): number {
    return this.#keys.size;
  }

  /** The ZAP check: may a peer with this raw public key connect at all? */
  knows(publicKey: Uint8Array): boolean {
    return this.#keys.has(Buffer.from(publicKey).toString("hex"));
  }

  /** May the worker whose Z85 key is `principal` keep serving `model` under the list in force? */
  allows(principal: string, model: string): boolean {
    for (const entry of this.#keys.values()) if (entry.publicKey === principal) return keyAllows(entry, model);
    return false;
  }

  /** Checks a registration: the worker's Z85 key when it may register, else why not. */
  check(c: PresentedCredentials): { ok: true; principal: string } | { ok: false; reason: AuthFailure; message: string } {
    if (c.publicKey.length === 0 || c.proof.length === 0) {
      return { ok: false, reason: "bad_proof", message: "this worker port requires CURVE credentials in the registration (curve_public_key, registration_proof)" };
    }
    const entry = this.#keys.get(Buffer.from(c.publicKey).toString("hex"));
    const claim = { routingId: c.routingId, modelName: c.modelName, modelVersion: c.modelVersion };
    if (entry === undefined || !verifyRegistrationProof(this.#rawSecret, Buffer.from(c.publicKey), claim, c.proof)) {
      return { ok: false, reason: "bad_proof", message: "the registration's proof does not match its key (wrong --curve-secret-key or --gateway-public-key?)" };
    }
    if (!keyAllows(entry, c.modelName)) {
      return { ok: false, reason: "model_not_allowed", message: `worker key ${entry.publicKey} may not serve model '${c.modelName}' (see --worker-keys)` };
    }
    return { ok: true, principal: entry.publicKey };
  }

  /** Re-reads the allow-list; on an error the list in force stays and the error is logged. */
  async reload(log: Logger): Promise<void> {
    const next = await readWorkerKeys(this.#keysPath);
    if (!next.ok) {
      log.error({ error: next.error }, "worker keys not reloaded; the list in force stays");
      return;
    }
    this.#keys = next.value;
    log.info({ keys: next.value.size }, "worker keys reloaded");
    this.emit("changed");
  }
}
