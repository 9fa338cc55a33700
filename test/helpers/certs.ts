import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** PEM files of a private CA, servers for 127.0.0.1/localhost, and a client, made with Debian's openssl. */
export interface TestCerts {
  readonly dir: string;
  readonly ca: string;
  /** Issues a certificate signed by the CA; returns its cert and key paths. */
  issue(name: string, options?: { server?: boolean }): { cert: string; key: string };
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), "clipper-certs-"));
  const ca = join(dir, "ca.pem");
  const caKey = join(dir, "ca.key");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", caKey, "-out", ca, "-days", "2", "-subj", "/CN=clipper-test-ca"]);
  return {
    dir,
    ca,
    issue(name, options = {}) {
      const key = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const cert = join(dir, `${name}.pem`);
      const ext = join(dir, `${name}.ext`);
      writeFileSync(
        ext,
        options.server === false
          ? "extendedKeyUsage=clientAuth\n"
          : "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
      );
      openssl(["req", ...ec, "-keyout", key, "-out", csr, "-subj", `/CN=${name}`]);
      openssl(["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext]);
      return { cert, key };
    },
  };
}
