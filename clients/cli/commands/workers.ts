/** `clipper workers list|watch`: the gateway's live workers (Heartbeat ListWorkers, WatchWorkers). */
import {
  Dialect,
  dialectToJSON,
  ListWorkersResponse,
  WatchWorkersResponse,
  watchWorkersResponse_KindToJSON,
  type Worker,
} from "../../../gen/clipper/v1/heartbeat.js";
import { fullJson, heartbeatClient, table, withClient, type Command } from "../cli-kit.js";

function dialect(d: Dialect): string {
  return d === Dialect.DIALECT_NATIVE ? "native" : d === Dialect.DIALECT_CLIPPER_V3 ? "clipper-v3" : dialectToJSON(d);
}

/** A quarantined worker may also have been draining; quarantine is what the operator must act on. */
function workerState(w: Worker): string {
  return w.quarantined ? "quarantined" : w.draining ? "draining" : "serving";
}

function workerRow(w: Worker): string[] {
  return [
    w.modelName, w.modelVersion, String(w.replicaId), dialect(w.dialect), w.inputType, String(w.inFlight), workerState(w), w.lastBeat?.toISOString() ?? "-",
    w.gatewayId || "-", w.workerId || "-", w.curvePublicKey === "" ? "-" : w.curvePublicKey,
  ];
}

export const workersCommands: readonly Command[] = [
  {
    name: "workers list",
    args: "[MODEL]",
    summary: "Lists the workers connected to this gateway now, with their live state (the whole fleet's replicas: `clipper replicas list`).",
    options: {},
    minArgs: 0,
    maxArgs: 1,
    async run({ positionals, globals, out }) {
      const res = await withClient(heartbeatClient(globals), (c) => c.listWorkers({ modelName: positionals[0] ?? "" }));
      out.result(fullJson(res, ListWorkersResponse.toJSON(res)), () =>
        table(["MODEL", "VERSION", "REPLICA", "DIALECT", "INPUT TYPE", "IN FLIGHT", "STATE", "LAST BEAT", "GATEWAY", "WORKER", "CURVE KEY"], res.workers.map(workerRow)),
      );
    },
  },
  {
    name: "workers watch",
    args: "[MODEL]",
    summary: "Prints the gateway's workers, then one line per change (registered, draining, quarantined, removed), until Ctrl-C.",
    options: {},
    minArgs: 0,
    maxArgs: 1,
    async run({ positionals, globals, out }) {
      const client = heartbeatClient(globals);
      const abort = new AbortController();
      const onSignal = (): void => abort.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      try {
        const stream = client.watch({ modelName: positionals[0] ?? "" }, { signal: abort.signal });
        for await (const event of stream as AsyncIterable<WatchWorkersResponse>) {
          const w = event.worker!;
          out.result(fullJson(event, WatchWorkersResponse.toJSON(event)), () =>
            [
              new Date().toISOString(),
              watchWorkersResponse_KindToJSON(event.kind).replace(/^KIND_/, "").padEnd(11),
              `${w.modelName}:${w.modelVersion} replica ${w.replicaId}`,
              dialect(w.dialect),
              `in-flight ${w.inFlight}`,
              event.reason,
            ].filter((s) => s !== "").join("  "),
          );
        }
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        client.close();
      }
    },
  },
];
