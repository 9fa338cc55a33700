/** `clipper keys generate`: a CURVE key pair for a gateway's worker port or for a worker. */
import { existsSync } from "node:fs";
import { generateKeyPair, writeKeyPair } from "../../../core/curve/key-pair.js";
import { usageError, type Command } from "../cli-kit.js";

/** File names come from NAME: no separators, no hidden files. */
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const keysCommands: readonly Command[] = [
  {
    name: "keys generate",
    args: "NAME",
    summary: "Writes a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub.",
    details: [
      "The gateway takes its secret key with --curve-secret-key and lists workers' public keys in --worker-keys;",
      "a worker takes its secret key with --curve-secret-key and the gateway's public key with --gateway-public-key.",
      "Example: clipper keys generate gateway --dir keys && clipper keys generate fraud-worker --dir keys",
    ].join("\n"),
    options: {
      dir: { type: "string", help: "directory to write into (created if needed; default: the current one)", value: "DIR" },
      force: { type: "boolean", help: "replace an existing NAME.key (the old key stops working wherever it is listed)" },
    },
    minArgs: 1,
    maxArgs: 1,
    async run({ positionals, values, out }) {
      const name = positionals[0]!;
      if (!KEY_NAME.test(name)) throw usageError(`key name '${name}' must be letters, digits, '.', '_' or '-' (at most 64, not starting with '.')`);
      const dir = typeof values.dir === "string" && values.dir !== "" ? values.dir : ".";
      const secretPath = `${dir}/${name}.key`;
      if (existsSync(secretPath) && values.force !== true) throw usageError(`${secretPath} exists; pass --force to replace it`);
      const pair = generateKeyPair();
      const files = await writeKeyPair(dir, name, pair);
      out.result({ name, publicKey: pair.publicKey, ...files }, () =>
        [`secret key  ${files.secretFile} (mode 0600)`, `public key  ${files.publicFile}`, `            ${pair.publicKey}`].join("\n"),
      );
    },
  },
];
