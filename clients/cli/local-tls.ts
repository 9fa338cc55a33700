/**
 * `clipper up --tls`: a private CA and a server certificate for 127.0.0.1
 * and localhost in `<data-dir>/tls/`, made with openssl (Debian's, installed
 * by apt-get when missing), kept across restarts while they are valid.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The files `clipper up --tls` serves with and tells callers to trust. */
export interface LocalTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** Days the certificates are valid; a stack older than that makes new ones. */
const VALID_DAYS = 365;

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** Whether `cert` is still valid for an hour and signed by `ca`. */
function stillGood(ca: string, cert: string): boolean {
  return spawnSync("openssl", ["x509", "-checkend", "3600", "-noout", "-in", cert]).status === 0
    && spawnSync("openssl", ["verify", "-CAfile", ca, cert]).status === 0;
}

/** The stack's CA and server certificate, made when missing or expiring. Throws with a hint when openssl is not installed. */
export function ensureLocalTls(dataDir: string): LocalTls {
  if (spawnSync("openssl", ["version"]).error !== undefined) {
    throw new Error("openssl is not installed; on Debian: sudo apt-get install -y openssl");
  }
  const dir = join(dataDir, "tls");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = { ca: join(dir, "ca.pem"), cert: join(dir, "server.pem"), key: join(dir, "server.key") };
  if (existsSync(files.ca) && existsSync(files.cert) && existsSync(files.key) && stillGood(files.ca, files.cert)) return files;
  const caKey = join(dir, "ca.key");
  const csr = join(dir, "server.csr");
  const ext = join(dir, "server.ext");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", caKey, "-out", files.ca, "-days", String(VALID_DAYS), "-subj", "/CN=clipper up local CA"]);
  writeFileSync(ext, "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  openssl(["req", ...ec, "-keyout", files.key, "-out", csr, "-subj", "/CN=localhost"]);
  openssl(["x509", "-req", "-in", csr, "-CA", files.ca, "-CAkey", caKey, "-CAcreateserial", "-out", files.cert, "-days", String(VALID_DAYS), "-extfile", ext]);
  return files;
}
