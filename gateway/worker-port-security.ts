/**
 * The gateway's worker-port flags, checked together: CURVE (--curve-secret-key
 * with --worker-keys) and the plaintext port for Clipper containers
 * (--clipper-v3-port, --clipper-v3-host, --clipper-v3-models). Every
 * problem is an error naming the flag.
 */
import type { Decoded } from "../core/decoded.js";
import { clipperV3PortError } from "../core/exposure.js";
import { modelNameProblem } from "../core/names.js";
import type { ClipperV3Port } from "./gateway.js";
import { WorkerAuth } from "./rpc/worker-auth.js";

export interface WorkerPortFlags {
  readonly "curve-secret-key": string;
  readonly "worker-keys": string;
  readonly "clipper-v3-port": string;
  readonly "clipper-v3-host": string;
  readonly "clipper-v3-models": string;
  readonly insecure: boolean;
}

export interface WorkerPortSecurity {
  /** CURVE on the worker port; null for a plaintext one. */
  readonly auth: WorkerAuth | null;
  /** The separate port for Clipper containers; null for none. */
  readonly clipperV3: ClipperV3Port | null;
  /** Models Clipper containers may register for, on whichever port speaks to them; null for any. */
  readonly clipperV3Models: ReadonlySet<string> | null;
}

export async function loadWorkerPortSecurity(flags: WorkerPortFlags): Promise<Decoded<WorkerPortSecurity>> {
  const keyFile = flags["curve-secret-key"];
  const keysFile = flags["worker-keys"];
  if ((keyFile === "") !== (keysFile === "")) {
    return { ok: false, error: "--curve-secret-key and --worker-keys go together: CURVE without an allow-list would admit any key" };
  }
  let models: Set<string> | null = null;
  if (flags["clipper-v3-models"].trim() !== "") {
    models = new Set(flags["clipper-v3-models"].split(",").map((m) => m.trim()));
    for (const m of models) {
      const problem = modelNameProblem("model name", m);
      if (problem !== null) return { ok: false, error: `--clipper-v3-models: ${problem}` };
    }
  }
  let clipperV3: ClipperV3Port | null = null;
  const portText = flags["clipper-v3-port"].trim();
  if (portText !== "") {
    if (keyFile === "") return { ok: false, error: "--clipper-v3-port is for a CURVE worker port (--curve-secret-key); without CURVE, Clipper containers connect to --rpc-port" };
    const port = /^\d+$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 0 && port <= 65535)) return { ok: false, error: `--clipper-v3-port: '${portText}' is not a port (0-65535; 0 picks a free one)` };
    const exposed = clipperV3PortError(flags["clipper-v3-host"], flags.insecure);
    if (exposed !== null) return { ok: false, error: exposed };
    clipperV3 = { host: flags["clipper-v3-host"], port, models };
  }
  if (keyFile === "") return { ok: true, value: { auth: null, clipperV3: null, clipperV3Models: models } };
  const auth = await WorkerAuth.load(keyFile, keysFile);
  if (!auth.ok) return auth;
  return { ok: true, value: { auth: auth.value, clipperV3, clipperV3Models: models } };
}
