/** `clipper replicas list|set`: registered replicas and the replica manager's deployments. */
import { status as Status } from "@grpc/grpc-js";
import { Deployment, Replica } from "../../../gen/clipper/v1/admin.js";
import { isServiceError } from "../../client.js";
import { adminClient, CliError, EXIT, fullJson, intOption, strOption, table, withClient, type Command } from "../cli-kit.js";
import { countWorkers } from "../worker-count.js";

/** Default bound of `replicas set`'s wait for the registered count, in ms. */
const DEFAULT_WAIT_MS = 60_000;
/** Poll interval of that wait, in ms. */
const POLL_MS = 200;

export const replicasCommands: readonly Command[] = [
  {
    name: "replicas list",
    args: "[MODEL]",
    summary: "Lists the replicas registered with the gateways (Redis DB 3) and, with a replica manager, what it runs (desired, running, restarts).",
    options: {},
    minArgs: 0,
    maxArgs: 1,
    async run({ positionals, globals, out }) {
      const model = positionals[0] ?? "";
      const { replicas, deployments } = await withClient(adminClient(globals), async (c) => {
        const r = await c.listReplicas({ modelName: model });
        const d = await c.listDeployments({ modelName: model }).then(
          (x) => x.deployments,
          (err: unknown) => {
            // Without a replica manager there is simply nothing managed.
            if (isServiceError(err) && err.code === Status.FAILED_PRECONDITION) return null;
            throw err;
          },
        );
        return { replicas: r.replicas, deployments: d };
      });
      out.result(
        {
          replicas: replicas.map((r) => fullJson(r, Replica.toJSON(r))),
          deployments: deployments === null ? null : deployments.map((d) => fullJson(d, Deployment.toJSON(d))),
        },
        () => {
          const parts = [
            table(["MODEL", "VERSION", "REPLICA", "INPUT TYPE", "CONNECTION", "GATEWAY"], replicas.map((r) => [r.modelName, r.modelVersion, String(r.replicaId), r.inputType, String(r.zmqConnectionId), r.gatewayId || "-"])),
          ];
          if (deployments === null) parts.push("", "(management runs without a replica manager)");
          else {
            parts.push(
              "",
              "Managed by the replica manager:",
              table(
                ["MODEL", "VERSION", "CURRENT", "DESIRED", "RUNNING", "REGISTERED", "RESTARTS", "LAST EXIT", "WORKER"],
                deployments.map((d) => [
                  d.modelName, d.modelVersion, d.isCurrentVersion ? "*" : "", String(d.desiredReplicas), String(d.runningProcesses),
                  String(d.registeredReplicas), String(d.restarts), d.lastExit || "-", d.worker?.module || (d.worker?.python ? `python ${d.worker.python}` : "") || (d.worker?.command ?? []).join(" "),
                ]),
              ),
            );
          }
          return parts.join("\n");
        },
      );
    },
  },
  {
    name: "replicas set",
    args: "MODEL N",
    summary: "Runs N worker processes of a model version deployed with `clipper models deploy` (scaling down drains before stopping), then waits until N are registered.",
    options: {
      version: { type: "string", value: "V", help: "model version (default the current one)" },
      "no-wait": { type: "boolean", help: "return at once instead of waiting for the registered count" },
      "wait-ms": { type: "string", value: "MS", help: `longest wait for the registered count (default ${DEFAULT_WAIT_MS})` },
    },
    minArgs: 2,
    maxArgs: 2,
    async run({ positionals, values, globals, out }) {
      const [model, nText] = positionals as [string, string];
      if (!/^\d+$/.test(nText)) throw new CliError(EXIT.USAGE, `N must be a whole number >= 0, got '${nText}'`);
      const n = Number(nText);
      const waitMs = intOption(values, "wait-ms", DEFAULT_WAIT_MS, 0);
      const result = await withClient(adminClient(globals), async (c) => {
        let version = strOption(values, "version");
        if (version === "") {
          version = (await c.listModels({ name: model })).models.find((m) => m.isCurrentVersion)?.version ?? "";
          if (version === "") throw new CliError(EXIT.FAILED, `NOT_FOUND: model '${model}' has no current version`);
        }
        const res = await c.setNumReplicas({ modelName: model, modelVersion: version, numReplicas: n });
        let registered = -1;
        if (values["no-wait"] !== true) {
          const end = Date.now() + waitMs;
          for (;;) {
            // Workers, not connections: a worker connected to several gateways has one entry per gateway.
            const { replicas } = await c.listReplicas({ modelName: model, modelVersion: version });
            registered = countWorkers(replicas);
            if (registered === n || Date.now() >= end) break;
            await new Promise((r) => setTimeout(r, POLL_MS));
          }
        }
        return { modelName: model, modelVersion: version, numReplicas: res.numReplicas, registeredReplicas: registered };
      });
      out.result(result, () =>
        result.registeredReplicas < 0
          ? `${model}:${result.modelVersion}: asked for ${n} replicas`
          : `${model}:${result.modelVersion}: ${result.registeredReplicas} of ${n} replicas registered`,
      );
      if (result.registeredReplicas >= 0 && result.registeredReplicas !== n) {
        out.error("DEADLINE_EXCEEDED", `${result.registeredReplicas} of ${n} replicas registered after ${waitMs} ms; the replica manager keeps trying (see clipper replicas list)`);
        return EXIT.FAILED;
      }
    },
  },
];
