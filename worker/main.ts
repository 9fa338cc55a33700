/** clipper-worker: flags → load the model module → run the worker until a signal or a drain. */
import { hostname } from "node:os";
import { exitUnlessOk } from "../core/config.js";
import { runUntilSignal } from "../core/lifecycle.js";
import { WORKER_PORTS_LINE } from "../core/ports-line.js";
import { reloadAll } from "../core/reload.js";
import { startHttpServer } from "../core/servers/http-server.js";
import { opsRoutes } from "../core/servers/ops-routes.js";
import { createLogger } from "../core/telemetry/logger.js";
import { startTracing } from "../core/telemetry/tracing.js";
import { ServerTls } from "../core/tls/server-tls.js";
import { WorkerMetrics } from "./metrics.js";
import { loadModel } from "./model-loader.js";
import { startWorker, type WorkerHandle } from "./runtime.js";
import { parseWorkerConfig } from "./worker-config.js";
import { WorkerCredentials } from "./worker-credentials.js";

const c = exitUnlessOk("clipper-worker", parseWorkerConfig(process.argv.slice(2), process.env));
const log = createLogger("clipper-worker", c.logLevel);
// Only when OTEL_* configures an exporter (core/telemetry/tracing.ts).
const tracing = await startTracing("clipper-worker");
const model = await loadModel(c.module);
if (!model.ok) {
  process.stderr.write(`clipper-worker: ${model.error}\n`);
  process.exit(2);
}
const tls = await ServerTls.fromFlags(c.tls);
if (!tls.ok) {
  process.stderr.write(`clipper-worker: ${tls.error}\n`);
  process.exit(2);
}
if (tls.value !== null && c.metricsPort === null) {
  process.stderr.write("clipper-worker: --tls-cert serves the metrics port: give --metrics-port too\n");
  process.exit(2);
}
const credentials = c.curve === null ? null : await WorkerCredentials.load(c.curve.secretKeyFile, c.curve.gatewayPublicKey);
if (credentials !== null && !credentials.ok) {
  process.stderr.write(`clipper-worker: ${credentials.error}\n`);
  process.exit(2);
}
const metrics = new WorkerMetrics(c.model, c.version);
try {
  // Before registering: no query may reach a model that is not set up.
  await model.setup?.({ metrics: metrics.model, model: c.model, version: c.version, inputType: c.inputType, log: log.child({ component: "model" }) });
} catch (err) {
  log.fatal({ err }, "model setup failed");
  process.stderr.write(`clipper-worker: the setup export of ${model.path} failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
await runUntilSignal(log, async () => {
  let worker: WorkerHandle | null = null;
  const server = c.metricsPort === null ? null : await startHttpServer(
    [opsRoutes(metrics.registry, () => (worker?.registeredGateways() ?? 0) > 0 ? { ready: true, reason: "" } : { ready: false, reason: "not registered with any gateway" })],
    {
      host: c.metricsHost,
      port: c.metricsPort,
      onError: (err) => log.error({ err }, "internal error in HTTP request"),
      ...(tls.value === null ? {} : { tls: tls.value }),
    },
  );
  worker = startWorker({
    model: c.model,
    version: c.version,
    inputType: c.inputType,
    gateway: c.gateway,
    gatewayResolveMs: c.gatewayResolveMs,
    predict: model.predict,
    concurrency: c.concurrency,
    maxBatchSize: c.maxBatchSize,
    modelTimeoutMs: c.modelTimeoutMs,
    heartbeatMs: c.heartbeatMs,
    description: `host=${hostname()} pid=${process.pid} module=${model.path}`,
    metrics,
    ...(credentials === null ? {} : { credentials: credentials.value }),
    log,
  });
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => (stopping ??= Promise.all([server?.close(), tracing.shutdown()]).then(() => {}));
  // The gateway may drain us (e.g. our version was deleted): leave once done.
  // A refused registration is a failure the operator has to fix, and a hung
  // model one for the supervisor to restart: exit 1.
  void worker.closed.then((exit) => stop().then(() => process.exit(exit.kind === "refused" || exit.kind === "hung" ? 1 : 0)));
  process.stdout.write(`clipper-worker: ${c.model}:${c.version} (${c.inputType}) connecting to ${c.gateway}\n`);
  if (server !== null) {
    process.stdout.write(`${WORKER_PORTS_LINE.format({ metrics: { host: c.metricsHost, port: server.port } })}\n`);
    log.info({ metricsPort: server.port, host: c.metricsHost }, "metrics listening");
  }
  // A signal drains: finish the batches in flight, then exit 0.
  const w = worker;
  return {
    close: () => w.drain("signal").then(stop),
    // SIGHUP: a new certificate for the metrics port; a worker has no tokens.
    reload: () => reloadAll(log, null, tls.value),
  };
}, { exitWithStdin: c.exitWithStdin });
