/**
 * A worker's CURVE identity: its key pair and the gateway's public key.
 * With them the worker's connections are encrypted and admitted by the
 * gateway's allow-list, and each registration carries the proof that this
 * worker holds its key (core/curve/registration-proof.ts).
 */
import { randomBytes } from "node:crypto";
import { readPublicKey, readSecretKeyFile } from "../core/curve/curve-keys.js";
import { registrationProof, ROUTING_ID_BYTES } from "../core/curve/registration-proof.js";
import type { Decoded } from "../core/decoded.js";

/** The zeromq socket options of a CURVE client. */
export interface CurveSocketOptions {
  /** zeromq takes routing ids as text: 16 random bytes in base64url. */
  readonly routingId: string;
  readonly curveServerKey: string;
  readonly curvePublicKey: string;
  readonly curveSecretKey: string;
}

export class WorkerCredentials {
  readonly #secretKey: string;
  readonly #publicKey: string;
  readonly #rawSecret: Buffer;
  readonly #rawPublic: Buffer;
  readonly #gatewayKey: string;
  readonly #rawGatewayKey: Buffer;

  constructor(pair: { secretKey: string; publicKey: string; rawSecret: Buffer; rawPublic: Buffer }, gateway: { publicKey: string; raw: Buffer }) {
    this.#secretKey = pair.secretKey;
    this.#publicKey = pair.publicKey;
    this.#rawSecret = pair.rawSecret;
    this.#rawPublic = pair.rawPublic;
    this.#gatewayKey = gateway.publicKey;
    this.#rawGatewayKey = gateway.raw;
  }

  /** Reads `--curve-secret-key FILE` and `--gateway-public-key KEY_OR_FILE`; errors name the flag. */
  static async load(secretKeyFile: string, gatewayPublicKey: string): Promise<Decoded<WorkerCredentials>> {
    const pair = await readSecretKeyFile(secretKeyFile);
    if (!pair.ok) return { ok: false, error: `--curve-secret-key: ${pair.error}` };
    const gateway = await readPublicKey(gatewayPublicKey);
    if (!gateway.ok) return { ok: false, error: `--gateway-public-key: ${gateway.error}` };
    return { ok: true, value: new WorkerCredentials(pair.value, gateway.value) };
  }

  /** The worker's Z85 public key (what the gateway's --worker-keys lists). */
  get publicKey(): string {
    return this.#publicKey;
  }

  /** Options for one connection, with a fresh random routing id the proof is bound to. */
  socketOptions(): CurveSocketOptions {
    return {
      routingId: randomBytes(ROUTING_ID_BYTES).toString("base64url"),
      curveServerKey: this.#gatewayKey,
      curvePublicKey: this.#publicKey,
      curveSecretKey: this.#secretKey,
    };
  }

  /** The registration fields that prove this worker holds its key, for one connection and model version. */
  registration(routingId: Buffer, modelName: string, modelVersion: string): { curvePublicKey: Buffer; registrationProof: Buffer } {
    return {
      curvePublicKey: this.#rawPublic,
      registrationProof: registrationProof(this.#rawSecret, this.#rawGatewayKey, { routingId, modelName, modelVersion }),
    };
  }
}
