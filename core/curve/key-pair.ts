/**
 * Making CURVE key pairs and writing them as files: `NAME.key` holds the
 * Z85 secret key (mode 0600), `NAME.pub` the Z85 public key; lines starting
 * with `#` are comments. CURVE keys are X25519 keys, which Node makes
 * itself. This module imports only Node and z85.ts, so the CLI can use it
 * (`clipper keys generate`, `clipper up`).
 */
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z85Encode } from "./z85.js";

/** A CURVE key pair, both halves in Z85 as zeromq takes them. */
export interface CurveKeyPair {
  readonly publicKey: string;
  readonly secretKey: string;
}

/** DER of an X25519 private key (PKCS #8) and public key (SPKI) before their 32 raw bytes (RFC 8410). */
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_X25519_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

/**
 * A fresh key pair: 32 random bytes, clamped as X25519 secret keys are,
 * and the public key OpenSSL derives from them. Not generateKeyPairSync:
 * on Node 20 a key generation job collected by a GC that runs while one of
 * its keys is being exported locks the key's mutex a second time, and the
 * process hangs for good (seen in `clipper keys generate`: the main thread
 * in ~KeyGenJob under KeyObjectHandle::ExportJWK). Without a job there is
 * nothing for that GC to collect.
 */
export function generateKeyPair(): CurveKeyPair {
  const secret = randomBytes(32);
  secret[0]! &= 248;
  secret[31]! &= 127;
  secret[31]! |= 64;
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, secret]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  if (spki.length !== SPKI_X25519_PREFIX.length + 32 || !spki.subarray(0, SPKI_X25519_PREFIX.length).equals(SPKI_X25519_PREFIX)) {
    throw new Error("X25519 public key export gave an unexpected encoding");
  }
  return { publicKey: z85Encode(spki.subarray(SPKI_X25519_PREFIX.length)), secretKey: z85Encode(secret) };
}

/** A key file's one key line, without its comments. */
export function keyLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

/**
 * Writes `NAME.key` (the secret, created with mode 0600 so it is never
 * readable by others, even for a moment) and `NAME.pub` into `dir`.
 */
export async function writeKeyPair(dir: string, name: string, pair: CurveKeyPair): Promise<{ secretFile: string; publicFile: string }> {
  await mkdir(dir, { recursive: true });
  const secretFile = join(dir, `${name}.key`);
  const publicFile = join(dir, `${name}.pub`);
  await writeFile(secretFile, `# CURVE secret key '${name}': keep it private\n${pair.secretKey}\n`, { mode: 0o600 });
  // writeFile keeps an existing file's mode: make an older file private too.
  await chmod(secretFile, 0o600);
  await writeFile(publicFile, `# CURVE public key '${name}'\n${pair.publicKey}\n`, { mode: 0o644 });
  return { secretFile, publicFile };
}
