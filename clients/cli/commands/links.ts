/** `clipper link` and `clipper unlink`: an application's model (Admin LinkModel, UnlinkModel). */
import { LinkModelResponse, UnlinkModelResponse } from "../../../gen/clipper/v1/admin.js";
import { adminClient, fullJson, withClient, type Command } from "../cli-kit.js";

export const linkCommands: readonly Command[] = [
  {
    name: "link",
    args: "APP MODEL",
    summary: "Links a model to an application (at most one per app); queries to APP then go to MODEL's current version.",
    options: {},
    minArgs: 2,
    maxArgs: 2,
    async run({ positionals, globals, out }) {
      const [app, model] = positionals as [string, string];
      const res = await withClient(adminClient(globals), (c) => c.linkModel({ app, model }));
      out.result(fullJson(res, LinkModelResponse.toJSON(res)), () => `linked ${model} to ${app}`);
    },
  },
  {
    name: "unlink",
    args: "APP MODEL",
    summary: "Removes the link between an application and a model.",
    options: {},
    minArgs: 2,
    maxArgs: 2,
    async run({ positionals, globals, out }) {
      const [app, model] = positionals as [string, string];
      const res = await withClient(adminClient(globals), (c) => c.unlinkModel({ app, model }));
      out.result(fullJson(res, UnlinkModelResponse.toJSON(res)), () => `unlinked ${model} from ${app}`);
    },
  },
];
