/**
 * The CURVE keys `clipper up` runs its worker port with, in
 * `<data-dir>/curve/`: the gateway's pair, one pair for the workers its
 * management starts, and the gateway's allow-list naming that worker key.
 * Kept across restarts, like the token: workers a restarted management
 * adopts still hold the old keys.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateKeyPair, keyLines, writeKeyPair } from "../../core/curve/key-pair.js";

export interface StackKeys {
  readonly gatewaySecretKey: string;
  readonly gatewayPublicKey: string;
  readonly workerSecretKey: string;
  /** The gateway's --worker-keys file. */
  readonly workerKeys: string;
}

/** Reuses `<dir>/NAME.key` and `.pub` when both hold a key line, else makes a new pair. */
async function ensurePair(dir: string, name: string): Promise<{ secretFile: string; publicFile: string; publicKey: string }> {
  const secretFile = join(dir, `${name}.key`);
  const publicFile = join(dir, `${name}.pub`);
  const line = (path: string): string | undefined => (existsSync(path) ? keyLines(readFileSync(path, "utf8"))[0] : undefined);
  const publicKey = line(publicFile);
  if (line(secretFile) !== undefined && publicKey !== undefined) return { secretFile, publicFile, publicKey };
  const pair = generateKeyPair();
  return { ...(await writeKeyPair(dir, name, pair)), publicKey: pair.publicKey };
}

export async function ensureStackKeys(dataDir: string): Promise<StackKeys> {
  const dir = join(dataDir, "curve");
  const gateway = await ensurePair(dir, "gateway");
  const workers = await ensurePair(dir, "workers");
  const workerKeys = join(dir, "worker-keys");
  writeFileSync(workerKeys, `# written by clipper up: the key of the workers its management starts, for any model\n${workers.publicKey}\n`, { mode: 0o600 });
  return { gatewaySecretKey: gateway.secretFile, gatewayPublicKey: gateway.publicFile, workerSecretKey: workers.secretFile, workerKeys };
}
