/** clipper-worker: flags → load the model module → run the worker until a signal or a drain. */
import { hostname } from "node:os";
import { exitUnlessOk } from "../core/config.js";
import { runUntilSignal } from "../core/lifecycle.js";
import { createLogger } from "../core/telemetry/logger.js";
import { loadModel } from "./model-loader.js";
import { startWorker } from "./runtime.js";
import { parseWorkerConfig } from "./worker-config.js";

const c = exitUnlessOk("clipper-worker", parseWorkerConfig(process.argv.slice(2), process.env));
const log = createLogger("clipper-worker", c.logLevel);
const model = await loadModel(c.module);
if (!model.ok) {
  process.stderr.write(`clipper-worker: ${model.error}\n`);
  process.exit(2);
}
await runUntilSignal(log, async () => {
  const worker = startWorker({
    model: c.model,
    version: c.version,
    inputType: c.inputType,
    gateway: c.gateway,
    predict: model.predict,
    concurrency: c.concurrency,
    maxBatchSize: c.maxBatchSize,
    heartbeatMs: c.heartbeatMs,
    description: `host=${hostname()} pid=${process.pid} module=${model.path}`,
    log,
  });
  // The gateway may drain us (e.g. our version was deleted): leave once done.
  // A refused registration is a failure the operator has to fix: exit 1.
  void worker.closed.then((exit) => process.exit(exit.kind === "refused" ? 1 : 0));
  process.stdout.write(`clipper-worker: ${c.model}:${c.version} (${c.inputType}) connecting to ${c.gateway}\n`);
  // A signal drains: finish the batches in flight, then exit 0.
  return { close: () => worker.drain("signal") };
});
