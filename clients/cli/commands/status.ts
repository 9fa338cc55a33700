/** `clipper status`: is the stack up, what does it serve, and how is it doing. */
import { status as Status } from "@grpc/grpc-js";
import { isServiceError, statusName } from "../../client.js";
import { adminClient, EXIT, heartbeatClient, table, type Command } from "../cli-kit.js";
import { scrape, summarize } from "../gateway-metrics.js";
import { countWorkers } from "../worker-count.js";

/** Gap between the two /metrics scrapes that give calls/s, in ms. */
const RATE_WINDOW_MS = 1_000;

export const statusCommand: Command = {
  name: "status",
  args: "",
  summary: "Shows whether management and the gateway answer, the apps and their models, the fleet's live workers, calls/s, p99 latency and mean batch size.",
  details:
    "Replicas and workers are the whole fleet's, from Redis DB 3 through management (every gateway sharing its Redis; a worker connected to several gateways counts once); traffic is the one gateway's /metrics. Exit code 3 when management or the gateway cannot be reached.",
  options: {},
  minArgs: 0,
  maxArgs: 0,
  async run({ globals, out }) {
    const admin = adminClient(globals);
    const heartbeat = heartbeatClient(globals);
    const problem = (err: unknown): string => (isServiceError(err) ? `${statusName(err.code)}: ${err.details}` : String(err));
    try {
      const first = scrape(globals.gatewayHttp, globals.token, globals.tlsCa);
      const [apps, models, replicas, workers] = await Promise.all([
        admin.listApps({}).then((r) => ({ ok: true as const, value: r.apps }), (e: unknown) => ({ ok: false as const, error: problem(e), unreachable: unreachable(e) })),
        admin.listModels({}).then((r) => r.models, () => []),
        admin.listReplicas({ modelName: "", modelVersion: "" }).then((r) => r.replicas, () => null),
        heartbeat.listWorkers({}).then((r) => ({ ok: true as const, value: r.workers }), (e: unknown) => ({ ok: false as const, error: problem(e), unreachable: unreachable(e) })),
      ]);
      const before = await first;
      await new Promise((r) => setTimeout(r, before === null ? 0 : RATE_WINDOW_MS));
      const m = summarize(before === null ? null : await scrape(globals.gatewayHttp, globals.token, globals.tlsCa), before);
      const report = {
        management: { address: globals.management, ok: apps.ok, error: apps.ok ? "" : apps.error },
        gateway: { address: globals.gateway, ok: workers.ok, error: workers.ok ? "" : workers.error },
        apps: apps.ok
          ? apps.value.map((a) => {
              const model = a.linkedModels[0] ?? "";
              const current = models.find((x) => x.name === model && x.isCurrentVersion)?.version ?? "";
              const live = replicas === null ? null : countWorkers(replicas.filter((r) => r.modelName === model && r.modelVersion === current));
              return { name: a.name, inputType: a.inputType, model, version: current, liveReplicas: live };
            })
          : [],
        workers: workers.ok ? workers.value.length : null,
        fleet: replicas === null ? null : { gateways: new Set(replicas.map((r) => r.gatewayId || "(unnamed)")).size, workers: countWorkers(replicas), connections: replicas.length },
        callsPerSec: m.callsPerSec,
        p99Ms: m.p99Ms,
        meanBatchSize: m.meanBatchSize,
      };
      out.result(report, () => {
        const line = (what: string, r: { address: string; ok: boolean; error: string }): string => `${what.padEnd(11)} ${r.address}  ${r.ok ? "ok" : `DOWN (${r.error})`}`;
        const fmt = (v: number | null, unit: string, digits = 1): string => `${v === null ? "-" : v.toFixed(digits)}${unit}`;
        return [
          line("management", report.management),
          line("gateway", report.gateway),
          report.fleet === null
            ? "fleet       - (management could not list the replicas)"
            : `fleet       ${report.fleet.gateways} gateway(s) with replicas, ${report.fleet.workers} worker(s), ${report.fleet.connections} replica connection(s); this gateway: ${report.workers ?? "?"}`,
          `traffic     ${fmt(m.callsPerSec, " calls/s")}  p99 ${fmt(m.p99Ms, " ms")}  mean batch ${fmt(m.meanBatchSize, "", 2)}  (from ${globals.tlsCa === undefined ? "http" : "https"}://${globals.gatewayHttp}/metrics)`,
          "",
          table(["APP", "INPUT TYPE", "MODEL", "VERSION", "LIVE REPLICAS"], report.apps.map((a) => [a.name, a.inputType, a.model || "-", a.version || "-", a.liveReplicas === null ? "?" : String(a.liveReplicas)])),
        ].join("\n");
      });
      if ((!apps.ok && apps.unreachable) || (!workers.ok && workers.unreachable)) return EXIT.UNAVAILABLE;
      return apps.ok && workers.ok ? EXIT.OK : EXIT.FAILED;
    } finally {
      admin.close();
      heartbeat.close();
    }
  },
};

function unreachable(err: unknown): boolean {
  return isServiceError(err) && (err.code === Status.UNAVAILABLE || err.code === Status.DEADLINE_EXCEEDED);
}
