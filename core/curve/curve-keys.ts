/**
 * CURVE keys read from their files (key-pair.ts writes them) and used as
 * the X25519 keys they are. A secret key file holds the 40-character Z85
 * secret key; its public key is derived, so the two can never disagree.
 */
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Decoded } from "../decoded.js";
import { type CurveKeyPair, keyLines } from "./key-pair.js";
import { z85Decode, z85Encode } from "./z85.js";

/** Raw X25519 keys are 32 bytes; their Z85 text is 40 characters. */
const KEY_BYTES = 32;
const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

// A raw X25519 private key wrapped as PKCS#8 (RFC 8410): a fixed 16-byte prefix, then the key.
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
// A raw X25519 public key wrapped as SubjectPublicKeyInfo: a fixed 12-byte prefix, then the key.
const SPKI_X25519_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

/** The 32 raw bytes of a Z85 key, or null when `text` is not one. */
export function rawKey(text: string): Buffer | null {
  if (!Z85_KEY.test(text)) return null;
  const raw = z85Decode(text);
  return raw !== null && raw.length === KEY_BYTES ? raw : null;
}

function privateKeyObject(secret: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, secret]), format: "der", type: "pkcs8" });
}

function publicKeyObject(publicKey: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519_PREFIX, publicKey]), format: "der", type: "spki" });
}

/** The raw public key of a raw secret key. */
export function publicKeyOf(secret: Buffer): Buffer {
  const spki = createPublicKey(privateKeyObject(secret)).export({ format: "der", type: "spki" });
  return spki.subarray(SPKI_X25519_PREFIX.length);
}

/**
 * The X25519 shared secret of one side's secret key and the other's public
 * key: the same on both sides, and computable only by the holder of one of
 * the two secret keys.
 */
export function sharedSecret(secret: Buffer, theirPublic: Buffer): Buffer {
  return diffieHellman({ privateKey: privateKeyObject(secret), publicKey: publicKeyObject(theirPublic) });
}

/** A secret key file's pair: the secret as written and the public key derived from it. */
export async function readSecretKeyFile(path: string): Promise<Decoded<CurveKeyPair & { readonly rawSecret: Buffer; readonly rawPublic: Buffer }>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    return { ok: false, error: `cannot read CURVE secret key ${path}: ${(err as Error).message}` };
  }
  const lines = keyLines(text);
  const raw = lines.length === 1 ? rawKey(lines[0]!) : null;
  if (raw === null) return { ok: false, error: `${path} is not a CURVE secret key: expected one line of 40 Z85 characters (clipper keys generate makes one)` };
  const rawPublic = publicKeyOf(raw);
  return { ok: true, value: { secretKey: lines[0]!, publicKey: z85Encode(rawPublic), rawSecret: raw, rawPublic } };
}

/**
 * A public key given as a file holding it or as its Z85 text. The file
 * comes first: a 40-character path such as /tmp/clipper-up-3eCdoh/curve/gateway.pub
 * is valid Z85 too.
 */
export async function readPublicKey(keyOrFile: string): Promise<Decoded<{ readonly publicKey: string; readonly raw: Buffer }>> {
  let text: string;
  try {
    text = await readFile(keyOrFile, "utf8");
  } catch (err) {
    const direct = rawKey(keyOrFile.trim());
    if (direct !== null) return { ok: true, value: { publicKey: keyOrFile.trim(), raw: direct } };
    return { ok: false, error: `'${keyOrFile}' is neither a 40-character Z85 public key nor a readable file: ${(err as Error).message}` };
  }
  const lines = keyLines(text);
  const raw = lines.length === 1 ? rawKey(lines[0]!) : null;
  if (raw === null) return { ok: false, error: `${keyOrFile} is not a CURVE public key: expected one line of 40 Z85 characters` };
  return { ok: true, value: { publicKey: lines[0]!, raw } };
}
