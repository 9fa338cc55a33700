/**
 * What a managed worker process is: the checks on a WorkerSpec and a
 * replica count, and the command line and environment a process of a
 * deployment is started with.
 */
import { stat } from "node:fs/promises";
import { isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";
import { invalidArgument } from "../core/errors.js";
import type { DeploymentRecord, WorkerSpecRecord } from "../core/deployment-layout.js";
import type { GatewayAccess } from "./gateway-access.js";
import { boundsMessage, inBounds, REPLICAS, WORKER_CONCURRENCY, WORKER_MAX_BATCH_SIZE } from "../core/limits.js";
import { parsePythonTarget, PYTHON_INTERPRETER, PYTHON_WORKER_PACKAGES, PYTHON_WORKER_PATH } from "../core/python-worker.js";
import type { ProcessCommand } from "./worker-process.js";

/** clipper-worker's entry point, run with this Node for `module` workers. */
const WORKER_BIN = fileURLToPath(new URL("../bin/clipper-worker.js", import.meta.url));

/** Most replicas of one version on one machine (core/limits.ts). */
const MAX_REPLICAS = REPLICAS.max;

/**
 * The process of a deployment: clipper-worker with its module, the Python
 * worker with its Python model (Debian's interpreter, the package on
 * PYTHONPATH before any the operator passes on), or the command as given;
 * all get who they are and where the gateway is in the
 * environment (clipper-worker's CLIPPER_GATEWAY and CURVE keys, and Clipper
 * containers' CLIPPER_IP / CLIPPER_PORT), on top of `baseEnv` (worker-env.ts: never
 * management's whole environment) and the spec's own variables.
 */
export function workerCommand(d: DeploymentRecord, gateway: GatewayAccess, logLevel: string, baseEnv: NodeJS.ProcessEnv): ProcessCommand {
  const w = d.worker;
  const env: NodeJS.ProcessEnv = {
    ...baseEnv,
    CLIPPER_LOG_LEVEL: logLevel,
    ...(w.concurrency > 0 ? { CLIPPER_WORKER_CONCURRENCY: String(w.concurrency) } : {}),
    ...(w.maxBatchSize > 0 ? { CLIPPER_MAX_BATCH_SIZE: String(w.maxBatchSize) } : {}),
    ...w.env,
    // Who the worker is and where the gateway is, for clipper-worker and for Clipper's containers.
    CLIPPER_MODEL_NAME: d.name,
    CLIPPER_MODEL_VERSION: d.version,
    CLIPPER_INPUT_TYPE: d.inputType,
    CLIPPER_GATEWAY: gateway.rpc,
    // Clipper's containers speak only TCP: with ipc:// endpoints alone and no
    // --gateway-clipper-v3 they get no address rather than a wrong one.
    ...(gateway.clipperV3 === null ? {} : { CLIPPER_IP: gateway.clipperV3.host, CLIPPER_PORT: String(gateway.clipperV3.port) }),
    // The key's file, never the key: the environment of a process is readable by its user's other processes.
    ...(gateway.curve === null
      ? {}
      : { CLIPPER_WORKER_CURVE_SECRET_KEY: gateway.curve.secretKeyFile, CLIPPER_GATEWAY_PUBLIC_KEY: gateway.curve.gatewayPublicKey }),
  };
  let argv: [string, ...string[]];
  if (w.module !== "") argv = [process.execPath, WORKER_BIN, "--module", w.module];
  else if (w.python !== "") {
    argv = [PYTHON_INTERPRETER, "-m", "clipper_worker", "--module", w.python];
    env.PYTHONPATH = env.PYTHONPATH === undefined || env.PYTHONPATH === "" ? PYTHON_WORKER_PATH : `${PYTHON_WORKER_PATH}:${env.PYTHONPATH}`;
  } else argv = w.command as [string, ...string[]];
  return { argv, env, cwd: w.workingDir !== "" ? w.workingDir : process.cwd() };
}

/** Throws INVALID_ARGUMENT unless `n` is a whole number from `min` to the per-machine maximum. */
export function checkReplicas(n: number, min: number): void {
  if (!Number.isSafeInteger(n) || n < min || n > MAX_REPLICAS) {
    throw invalidArgument("INVALID_REQUEST", `the number of replicas must be between ${min} and ${MAX_REPLICAS}, got ${n}`);
  }
}

/** Throws INVALID_ARGUMENT unless the spec names exactly one of a module, a Python model or a command, and its paths exist here. */
export async function checkWorker(w: WorkerSpecRecord): Promise<void> {
  const hasModule = w.module !== "";
  const hasCommand = w.command.length > 0;
  const hasPython = w.python !== "";
  if (Number(hasModule) + Number(hasCommand) + Number(hasPython) !== 1) {
    throw invalidArgument("INVALID_REQUEST", "give exactly one of worker.module (a model module), worker.python (a Python model) and worker.command (a worker program)");
  }
  if (hasCommand && w.command[0] === "") throw invalidArgument("INVALID_REQUEST", "worker.command must start with the program to run");
  for (const [n, b] of [[w.concurrency, WORKER_CONCURRENCY], [w.maxBatchSize, WORKER_MAX_BATCH_SIZE]] as const) {
    if (!inBounds(n, b)) throw invalidArgument("INVALID_REQUEST", boundsMessage(b, n));
  }
  if (hasModule) {
    if (!isAbsolute(w.module)) throw invalidArgument("INVALID_REQUEST", `worker.module must be an absolute path on the management host, got '${w.module}'`);
    const s = await stat(w.module).catch(() => null);
    if (s === null || !s.isFile()) throw invalidArgument("INVALID_REQUEST", `model module ${w.module} does not exist on the management host`);
  }
  if (hasPython) await checkPython(w.python);
  if (w.workingDir !== "") {
    const s = await stat(w.workingDir).catch(() => null);
    if (s === null || !s.isDirectory()) throw invalidArgument("INVALID_REQUEST", `working directory ${w.workingDir} does not exist on the management host`);
  }
}

/** A Python model: an existing absolute .py file or a module name, and an interpreter to run it with. */
async function checkPython(spec: string): Promise<void> {
  const target = parsePythonTarget(spec);
  if (target.kind === "file") {
    if (!isAbsolute(target.path)) throw invalidArgument("INVALID_REQUEST", `worker.python must be an absolute path of a .py file or a module name, got '${spec}'`);
    const s = await stat(target.path).catch(() => null);
    if (s === null || !s.isFile()) throw invalidArgument("INVALID_REQUEST", `Python model ${target.path} does not exist on the management host`);
  }
  const python = await stat(PYTHON_INTERPRETER).catch(() => null);
  if (python === null) {
    throw invalidArgument("INVALID_REQUEST", `Python workers run with Debian's ${PYTHON_INTERPRETER}, which the management host lacks (apt-get install ${PYTHON_WORKER_PACKAGES})`);
  }
}
