/**
 * TLS for a server's gRPC and HTTP ports from PEM files (`--tls-cert`,
 * `--tls-key`, and `--tls-client-ca` for mutual TLS), re-read on SIGHUP
 * without dropping open connections: grpc-js gets the new certificate
 * through a certificate provider, the HTTPS server through
 * setSecureContext. A file that does not load on reload is logged and the
 * certificate in force stays.
 */
import { readFile } from "node:fs/promises";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import { experimental, type ServerCredentials } from "@grpc/grpc-js";
import type { Decoded } from "../decoded.js";

/** The files named by the TLS flags; clientCa "" means no client certificates are asked for. */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly clientCa: string;
}

interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa: Buffer | null;
}

/** Reads the files and checks that they make a usable context (a key that does not match its certificate fails here, not at the first handshake). */
async function readMaterial(files: TlsFiles): Promise<Decoded<TlsMaterial>> {
  const read = async (flag: string, path: string): Promise<Decoded<Buffer>> => {
    try {
      return { ok: true, value: await readFile(path) };
    } catch (err) {
      return { ok: false, error: `${flag}: cannot read ${path}: ${(err as Error).message}` };
    }
  };
  const cert = await read("--tls-cert", files.cert);
  if (!cert.ok) return cert;
  const key = await read("--tls-key", files.key);
  if (!key.ok) return key;
  const clientCa = files.clientCa === "" ? null : await read("--tls-client-ca", files.clientCa);
  if (clientCa !== null && !clientCa.ok) return clientCa;
  const material = { cert: cert.value, key: key.value, clientCa: clientCa?.value ?? null };
  try {
    createSecureContext(contextOptions(material));
  } catch (err) {
    return { ok: false, error: `--tls-cert/--tls-key/--tls-client-ca: ${(err as Error).message}` };
  }
  return { ok: true, value: material };
}

function contextOptions(m: TlsMaterial): SecureContextOptions {
  return { cert: m.cert, key: m.key, ...(m.clientCa === null ? {} : { ca: m.clientCa }) };
}

type IdentityListener = experimental.IdentityCertificateUpdateListener;
type CaListener = experimental.CaCertificateUpdateListener;

/** One process's TLS: what both of its servers are built with, and reload. */
export class ServerTls implements experimental.CertificateProvider {
  readonly #files: TlsFiles;
  #material: TlsMaterial;
  readonly #identityListeners = new Set<IdentityListener>();
  readonly #caListeners = new Set<CaListener>();
  readonly #contextListeners = new Set<(options: SecureContextOptions) => void>();

  private constructor(files: TlsFiles, material: TlsMaterial) {
    this.#files = files;
    this.#material = material;
  }

  /** From the flags: null when TLS is off (no --tls-cert/--tls-key); the error names the flag. */
  static async fromFlags(flags: { readonly "tls-cert": string; readonly "tls-key": string; readonly "tls-client-ca": string }): Promise<Decoded<ServerTls | null>> {
    const files = { cert: flags["tls-cert"], key: flags["tls-key"], clientCa: flags["tls-client-ca"] };
    if (files.cert === "" && files.key === "") {
      return files.clientCa === "" ? { ok: true, value: null } : { ok: false, error: "--tls-client-ca needs --tls-cert and --tls-key" };
    }
    if (files.cert === "" || files.key === "") return { ok: false, error: "--tls-cert and --tls-key go together" };
    return ServerTls.load(files);
  }

  /** Loads the files; the error names the flag. */
  static async load(files: TlsFiles): Promise<Decoded<ServerTls>> {
    const material = await readMaterial(files);
    return material.ok ? { ok: true, value: new ServerTls(files, material.value) } : material;
  }

  /** True when clients must present a certificate signed by --tls-client-ca. */
  get mutual(): boolean {
    return this.#material.clientCa !== null;
  }

  /** grpc-js credentials that follow reloads. */
  grpcCredentials(): ServerCredentials {
    return experimental.createCertificateProviderServerCredentials(this, this.mutual ? this : null, this.mutual);
  }

  /** Options of an HTTPS server (with client certificates required for mutual TLS). */
  httpsOptions(): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
    return { ...contextOptions(this.#material), requestCert: this.mutual, rejectUnauthorized: this.mutual };
  }

  /** Calls `listener` with new context options after each successful reload (HTTPS's setSecureContext). */
  onReload(listener: (options: SecureContextOptions) => void): void {
    this.#contextListeners.add(listener);
  }

  /** Re-reads the files; on an error the certificate in force stays and the error is returned. */
  async reload(): Promise<Decoded<void>> {
    const next = await readMaterial(this.#files);
    if (!next.ok) return next;
    if ((next.value.clientCa === null) !== (this.#material.clientCa === null)) {
      return { ok: false, error: "--tls-client-ca cannot be turned on or off by a reload; restart the server" };
    }
    this.#material = next.value;
    for (const l of this.#identityListeners) l({ certificate: next.value.cert, privateKey: next.value.key });
    if (next.value.clientCa !== null) for (const l of this.#caListeners) l({ caCertificate: next.value.clientCa });
    for (const l of this.#contextListeners) l(contextOptions(next.value));
    return { ok: true, value: undefined };
  }

  // grpc-js adds its listener before the watcher that applies the update,
  // so the first update is delivered on the next tick, as its own file
  // watcher does.
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.add(listener);
    process.nextTick(() => {
      if (this.#identityListeners.has(listener)) listener({ certificate: this.#material.cert, privateKey: this.#material.key });
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.delete(listener);
  }

  addCaCertificateListener(listener: CaListener): void {
    this.#caListeners.add(listener);
    process.nextTick(() => {
      const ca = this.#material.clientCa;
      if (ca !== null && this.#caListeners.has(listener)) listener({ caCertificate: ca });
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#caListeners.delete(listener);
  }
}
