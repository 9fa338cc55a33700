/**
 * How a native worker proves, in its registration, that it holds the
 * secret key of the CURVE public key it names.
 *
 * CURVE and the ZAP handler admit only connections whose key is on the
 * allow-list, but ZAP never learns the peer's routing id, and zeromq.js
 * shows no per-message metadata: the gateway cannot tell from the socket
 * which key a message came in under. So the registration carries the key
 * and an HMAC-SHA256, keyed by the X25519 secret the worker's and the
 * gateway's keys share, over the routing id and what is being registered.
 * Only the holder of the worker's secret key (or of the gateway's) can make
 * it, it is bound to that one connection's routing id, and it travels
 * inside the CURVE-encrypted link, so nobody else sees it to replay it.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { sharedSecret } from "./curve-keys.js";

/** Separates this use of the shared secret from any other. */
const DOMAIN = "clipper-ts worker registration v1";

/**
 * Random bytes in a worker's routing id when it uses CURVE (sent as their
 * base64url text, as zeromq takes routing ids as strings): nobody can guess
 * it and speak under it.
 */
export const ROUTING_ID_BYTES = 16;

/** What a registration is bound to. */
export interface RegistrationClaim {
  readonly routingId: Buffer;
  readonly modelName: string;
  readonly modelVersion: string;
}

function mac(shared: Buffer, claim: RegistrationClaim): Buffer {
  const h = createHmac("sha256", shared);
  // Length-prefixed fields, so no two different claims hash the same bytes.
  for (const part of [Buffer.from(DOMAIN), claim.routingId, Buffer.from(claim.modelName, "utf8"), Buffer.from(claim.modelVersion, "utf8")]) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(part.length);
    h.update(len).update(part);
  }
  return h.digest();
}

/** The worker's proof for `claim`, from its secret key and the gateway's public key. */
export function registrationProof(workerSecret: Buffer, gatewayPublic: Buffer, claim: RegistrationClaim): Buffer {
  return mac(sharedSecret(workerSecret, gatewayPublic), claim);
}

/** Whether `proof` was made by the holder of `workerPublic`'s secret key for `claim` (the gateway's side). */
export function verifyRegistrationProof(gatewaySecret: Buffer, workerPublic: Buffer, claim: RegistrationClaim, proof: Uint8Array): boolean {
  let expected: Buffer;
  try {
    expected = mac(sharedSecret(gatewaySecret, workerPublic), claim);
  } catch {
    // Not a usable X25519 public key.
    return false;
  }
  return proof.length === expected.length && timingSafeEqual(expected, proof);
}
