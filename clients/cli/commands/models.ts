/**
 * `clipper models register|deploy|list|get|set-version|delete-version`:
 * model versions (Admin RegisterModel, DeployModel, ListModels, GetModel,
 * SetModelVersion, DeleteModelVersion).
 */
import { resolve } from "node:path";
import {
  DeployModelResponse,
  GetModelResponse,
  ListModelsResponse,
  RegisterModelResponse,
  SetModelVersionResponse,
  type Model,
} from "../../../gen/clipper/v1/admin.js";
import { formatPythonTarget, parsePythonTarget } from "../../../core/python-worker.js";
import { adminClient, CliError, EXIT, fullJson, intOption, strOption, table, usageError, withClient, type Command, type CommandContext } from "../cli-kit.js";

const MODEL_HEADERS = ["NAME", "VERSION", "CURRENT", "INPUT TYPE", "BATCH SIZE", "LABELS", "CONTAINER", "POLICY"];

function modelRow(m: Model): string[] {
  const policy = [m.noCache ? "no-cache" : "", m.noCoalesce ? "no-coalesce" : ""].filter((p) => p !== "").join(",") || "-";
  return [m.name, m.version, m.isCurrentVersion ? "*" : "", m.inputType, m.batchSize === -1 ? "adaptive" : String(m.batchSize), m.labels.join(",") || "-", m.containerName, policy];
}

/** Options shared by register and deploy. */
const VERSION_OPTIONS = {
  version: { type: "string", value: "V", help: "model version (required)" },
  "input-type": { type: "string", value: "TYPE", help: "doubles, floats, integers, bytes or strings (required)" },
  labels: { type: "string", value: "A,B", help: "comma-separated labels" },
  "batch-size": { type: "string", value: "N", help: "fixed maximum batch size; default adaptive" },
  "no-cache": { type: "boolean", help: "never store or reuse this version's answers (stochastic models: every call reaches the model)" },
  "no-coalesce": { type: "boolean", help: "identical queries in flight each get their own model call (stochastic models: two callers, two draws)" },
} as const;

/** The version's cache policy from --no-cache / --no-coalesce (kept with the version, set at registration). */
function policyFlags(values: CommandContext["values"]): { noCache: boolean; noCoalesce: boolean } {
  return { noCache: values["no-cache"] === true, noCoalesce: values["no-coalesce"] === true };
}

function required(values: CommandContext["values"], name: string): string {
  const v = strOption(values, name);
  if (v === "") throw usageError(`--${name} is required`);
  return v;
}

/** A --python file made absolute against this directory (management checks it on its host); a module name as given. */
function resolvedPython(spec: string): string {
  const t = parsePythonTarget(spec);
  return t.kind === "file" ? formatPythonTarget({ ...t, path: resolve(t.path) }) : spec;
}

function labels(values: CommandContext["values"]): string[] {
  return strOption(values, "labels").split(",").map((s) => s.trim()).filter((s) => s !== "");
}

export const modelsCommands: readonly Command[] = [
  {
    name: "models register",
    args: "NAME",
    summary: "Registers a model version and makes it current (Clipper's register_model); start its workers yourself (clipper-worker), or use deploy.",
    options: {
      ...VERSION_OPTIONS,
      "container-name": { type: "string", value: "IMAGE", help: "Clipper's container_name, informational (default NO_CONTAINER)" },
    },
    minArgs: 1,
    maxArgs: 1,
    async run({ positionals, values, globals, out }) {
      const res = await withClient(adminClient(globals), (c) =>
        c.registerModel({
          name: positionals[0]!,
          version: required(values, "version"),
          inputType: required(values, "input-type"),
          labels: labels(values),
          containerName: strOption(values, "container-name"),
          batchSize: intOption(values, "batch-size", -1, -1),
          ...policyFlags(values),
        }),
      );
      out.result(fullJson(res, RegisterModelResponse.toJSON(res)), () => `registered ${res.model!.name}:${res.model!.version} (now current)`);
    },
  },
  {
    name: "models deploy",
    args: "NAME",
    summary: "Deploys a model version with the replica manager: starts its workers, waits until they serve, then makes it current and drains the previous version's replicas (no call fails).",
    details: [
      "The worker is a model module for clipper-worker (--module), a Python model for the Python worker (--python:",
      "a .py file or an importable module, optionally :FUNCTION; run with Debian's /usr/bin/python3), or any program after -- (run as is, with",
      "CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION, CLIPPER_INPUT_TYPE, CLIPPER_IP, CLIPPER_PORT and CLIPPER_GATEWAY set).",
      "Examples:",
      "  clipper models deploy sum --version 2 --input-type doubles --replicas 2 --module ./clients/demo/sum-model.js",
      "  clipper models deploy iris --version 1 --input-type doubles --python ./examples/iris/model.py",
      "  clipper models deploy py --version 1 --input-type doubles -- python3 my_clipper_container.py",
    ].join("\n"),
    options: {
      ...VERSION_OPTIONS,
      replicas: { type: "string", value: "N", help: "worker processes to run (default 1)" },
      module: { type: "string", value: "PATH", help: "model module for clipper-worker (resolved against this directory)" },
      python: { type: "string", value: "PATH_OR_MODULE", help: "Python model for the Python worker: a .py file (resolved against this directory) or a module name, optionally :FUNCTION" },
      concurrency: { type: "string", value: "N", help: "batches each clipper-worker runs at once (default 1)" },
      "max-batch-size": { type: "string", value: "N", help: "largest batch each clipper-worker takes (default no limit)" },
      env: { type: "string", value: "KEY=VALUE", multiple: true, help: "environment variable of each worker" },
      workdir: { type: "string", value: "DIR", help: "working directory of each worker (default management's)" },
    },
    minArgs: 1,
    maxArgs: 1,
    takesRest: true,
    async run({ positionals, values, rest, globals, out }) {
      const module = strOption(values, "module");
      const python = strOption(values, "python");
      if ([module !== "", python !== "", rest.length > 0].filter(Boolean).length !== 1) {
        throw usageError("give exactly one of --module PATH, --python PATH_OR_MODULE and -- COMMAND [ARGS…]");
      }
      const env: Record<string, string> = {};
      for (const kv of (values.env as string[] | undefined) ?? []) {
        const i = kv.indexOf("=");
        if (i <= 0) throw usageError(`--env: '${kv}' is not KEY=VALUE`);
        env[kv.slice(0, i)] = kv.slice(i + 1);
      }
      const workdir = strOption(values, "workdir");
      const res = await withClient(adminClient(globals), (c) =>
        c.deployModel({
          name: positionals[0]!,
          version: required(values, "version"),
          inputType: required(values, "input-type"),
          labels: labels(values),
          batchSize: intOption(values, "batch-size", -1, -1),
          ...policyFlags(values),
          numReplicas: intOption(values, "replicas", 1, 1),
          worker: {
            module: module === "" ? "" : resolve(module),
            command: [...rest],
            python: python === "" ? "" : resolvedPython(python),
            env,
            workingDir: workdir === "" ? "" : resolve(workdir),
            concurrency: intOption(values, "concurrency", 0),
            maxBatchSize: intOption(values, "max-batch-size", 0),
          },
        }),
      );
      out.result(fullJson(res, DeployModelResponse.toJSON(res)), () => {
        const m = res.model!;
        const was = res.previousVersion === "" ? "" : `; version ${res.previousVersion}'s replicas drain once the switch has settled`;
        return `deployed ${m.name}:${m.version} with ${res.numReplicas} replica${res.numReplicas === 1 ? "" : "s"} (now current${was})`;
      });
    },
  },
  {
    name: "models list",
    args: "[NAME]",
    summary: "Lists model versions (of one model when NAME is given); * marks the current version.",
    options: {},
    minArgs: 0,
    maxArgs: 1,
    async run({ positionals, globals, out }) {
      const res = await withClient(adminClient(globals), (c) => c.listModels({ name: positionals[0] ?? "" }));
      out.result(fullJson(res, ListModelsResponse.toJSON(res)), () => table(MODEL_HEADERS, res.models.map(modelRow)));
    },
  },
  {
    name: "models get",
    args: "NAME [VERSION]",
    summary: "Shows one model version (the current one when VERSION is left out).",
    options: {},
    minArgs: 1,
    maxArgs: 2,
    async run({ positionals, globals, out }) {
      const name = positionals[0]!;
      const res = await withClient(adminClient(globals), async (c) => {
        let version = positionals[1];
        if (version === undefined) {
          version = (await c.listModels({ name })).models.find((m) => m.isCurrentVersion)?.version;
          if (version === undefined) throw new CliError(EXIT.FAILED, `NOT_FOUND: model '${name}' has no current version`);
        }
        return c.getModel({ name, version });
      });
      out.result(fullJson(res, GetModelResponse.toJSON(res)), () => table(MODEL_HEADERS, [modelRow(res.model!)]));
    },
  },
  {
    name: "models set-version",
    args: "NAME VERSION",
    summary: "Makes VERSION current (rollback or roll-forward). With the replica manager, a version it runs is brought up and registered first.",
    options: {},
    minArgs: 2,
    maxArgs: 2,
    async run({ positionals, globals, out }) {
      const res = await withClient(adminClient(globals), (c) => c.setModelVersion({ name: positionals[0]!, version: positionals[1]! }));
      out.result(fullJson(res, SetModelVersionResponse.toJSON(res)), () => `${res.model!.name}: version ${res.model!.version} is now current`);
    },
  },
  {
    name: "models delete-version",
    args: "NAME VERSION",
    summary: "Marks a model version invalid (Clipper's delete_versioned_model); the gateway drops its replicas, and the replica manager stops running it.",
    options: {},
    minArgs: 2,
    maxArgs: 2,
    async run({ positionals, globals, out }) {
      await withClient(adminClient(globals), (c) => c.deleteModelVersion({ name: positionals[0]!, version: positionals[1]! }));
      out.result({}, () => `deleted ${positionals[0]!}:${positionals[1]!}`);
    },
  },
];
