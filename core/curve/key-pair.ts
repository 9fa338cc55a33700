/**
 * Making CURVE key pairs and writing them as files: `NAME.key` holds the
 * Z85 secret key (mode 0600), `NAME.pub` the Z85 public key; lines starting
 * with `#` are comments. CURVE keys are X25519 keys, which Node makes
 * itself. This module imports only Node and z85.ts, so the CLI can use it
 * (`clipper keys generate`, `clipper up`).
 */
import { generateKeyPairSync } from "node:crypto";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z85Encode } from "./z85.js";

/** A CURVE key pair, both halves in Z85 as zeromq takes them. */
export interface CurveKeyPair {
  readonly publicKey: string;
  readonly secretKey: string;
}

/** A fresh key pair. */
export function generateKeyPair(): CurveKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync("x25519");
  const raw = (jwkPart: string | undefined): Buffer => Buffer.from(jwkPart ?? "", "base64url");
  return {
    publicKey: z85Encode(raw(publicKey.export({ format: "jwk" }).x)),
    secretKey: z85Encode(raw(privateKey.export({ format: "jwk" }).d)),
  };
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
