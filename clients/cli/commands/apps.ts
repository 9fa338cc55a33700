/** `clipper apps create|list|get|delete`: applications (Admin CreateApp, ListApps, GetApp, DeleteApp). */
import { CreateAppResponse, GetAppResponse, ListAppsResponse, type App } from "../../../gen/clipper/v1/admin.js";
import { adminClient, fullJson, intOption, strOption, table, usageError, withClient, type Command } from "../cli-kit.js";

/** One app as a table row. */
function appRow(a: App): string[] {
  return [a.name, a.inputType, a.linkedModels.join(",") || "-", String(a.latencySloMicros), JSON.stringify(a.defaultOutput)];
}
const APP_HEADERS = ["NAME", "INPUT TYPE", "MODEL", "SLO (µs)", "DEFAULT OUTPUT"];

export const appsCommands: readonly Command[] = [
  {
    name: "apps create",
    args: "NAME",
    summary: "Registers an application: the unit callers send queries to.",
    details: "Example: clipper apps create demo --input-type doubles --default-output -1 --slo-micros 100000",
    options: {
      "input-type": { type: "string", value: "TYPE", help: "doubles, floats, integers, bytes or strings (Clipper aliases accepted; required)" },
      "default-output": { type: "string", value: "TEXT", help: 'answer when no model answers within the SLO (default "-1.0")' },
      "slo-micros": { type: "string", value: "N", help: "latency objective per query in µs (default 100000)" },
    },
    minArgs: 1,
    maxArgs: 1,
    async run({ positionals, values, globals, out }) {
      const inputType = strOption(values, "input-type");
      if (inputType === "") throw usageError("--input-type is required (doubles, floats, integers, bytes or strings)");
      const res = await withClient(adminClient(globals), (c) =>
        c.createApp({
          name: positionals[0]!,
          inputType,
          defaultOutput: strOption(values, "default-output", "-1.0"),
          latencySloMicros: intOption(values, "slo-micros", 100_000, 1),
        }),
      );
      out.result(fullJson(res, CreateAppResponse.toJSON(res)), () => `created app ${res.app!.name} (${res.app!.inputType})`);
    },
  },
  {
    name: "apps list",
    args: "",
    summary: "Lists every application.",
    options: {},
    minArgs: 0,
    maxArgs: 0,
    async run({ globals, out }) {
      const res = await withClient(adminClient(globals), (c) => c.listApps({}));
      out.result(fullJson(res, ListAppsResponse.toJSON(res)), () => table(APP_HEADERS, res.apps.map(appRow)));
    },
  },
  {
    name: "apps get",
    args: "NAME",
    summary: "Shows one application with its linked model.",
    options: {},
    minArgs: 1,
    maxArgs: 1,
    async run({ positionals, globals, out }) {
      const res = await withClient(adminClient(globals), (c) => c.getApp({ name: positionals[0]! }));
      out.result(fullJson(res, GetAppResponse.toJSON(res)), () => table(APP_HEADERS, [appRow(res.app!)]));
    },
  },
  {
    name: "apps delete",
    args: "NAME",
    summary: "Deletes an application, its model link and its selection state.",
    options: {},
    minArgs: 1,
    maxArgs: 1,
    async run({ positionals, globals, out }) {
      await withClient(adminClient(globals), (c) => c.deleteApp({ name: positionals[0]! }));
      out.result({}, () => `deleted app ${positionals[0]!}`);
    },
  },
];
