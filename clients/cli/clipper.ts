/**
 * `clipper`: the operator CLI over the gRPC APIs, and `clipper up`, the
 * whole local stack. Picks the subcommand from the first words, runs it,
 * and exits with its code (cli-kit.ts EXIT).
 */
import { appsCommands } from "./commands/apps.js";
import { k8sCommands } from "./commands/k8s.js";
import { keysCommands } from "./commands/keys.js";
import { linkCommands } from "./commands/links.js";
import { modelsCommands } from "./commands/models.js";
import { predictCommand } from "./commands/predict.js";
import { replicasCommands } from "./commands/replicas.js";
import { statusCommand } from "./commands/status.js";
import { workersCommands } from "./commands/workers.js";
import { EXIT, Output, reportError, runCommand, type Command } from "./cli-kit.js";
import { upCommand } from "./up.js";

/** Every command, in the order --help lists them. */
const COMMANDS: readonly Command[] = [
  upCommand,
  statusCommand,
  ...appsCommands,
  ...modelsCommands,
  ...linkCommands,
  ...replicasCommands,
  ...workersCommands,
  predictCommand,
  ...keysCommands,
  ...k8sCommands,
];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length + c.args.length + 1));
  return [
    "Usage: clipper COMMAND [ARGS] [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${`${c.name} ${c.args}`.padEnd(width + 2)}${c.summary.split(/(?<=\.) /)[0]}`),
    "",
    "Every command has --help. Global options: --management HOST:PORT (CLIPPER_MANAGEMENT_ADDR), --gateway HOST:PORT",
    "(CLIPPER_GATEWAY_ADDR), --gateway-http HOST:PORT (CLIPPER_GATEWAY_HTTP_ADDR), --timeout MS (CLIPPER_TIMEOUT_MS), --json.",
    "Exit codes: 0 ok, 1 the call failed, 2 bad usage, 3 a service could not be reached.",
  ].join("\n");
}

/** Runs the CLI on `argv` (without node and the script) and resolves with the exit code. */
async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const out = new Output(process.stdout, process.stderr);
  out.json = argv.includes("--json");
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    out.text(overview());
    return argv.length === 0 ? EXIT.USAGE : EXIT.OK;
  }
  // The longest command name matching the leading words ("models deploy" before a lone "models").
  const words = argv.slice(0, 2).join(" ");
  const command = COMMANDS.find((c) => c.name === words) ?? COMMANDS.find((c) => c.name === argv[0]);
  if (command === undefined) {
    const group = COMMANDS.filter((c) => c.name.startsWith(`${argv[0]} `));
    if (group.length > 0 && (argv.length === 1 || argv[1] === "--help" || argv[1] === "-h")) {
      out.text([`Usage: clipper ${argv[0]} SUBCOMMAND`, "", ...group.map((c) => `  clipper ${c.name} ${c.args}  ${c.summary.split(/(?<=\.) /)[0]}`)].join("\n"));
      return argv.length === 1 ? EXIT.USAGE : EXIT.OK;
    }
    const what = group.length > 0 ? `unknown subcommand '${argv.slice(0, 2).join(" ")}' (try clipper ${argv[0]} --help)` : `unknown command '${argv[0]}' (try clipper --help)`;
    out.error("USAGE", what, false);
    return EXIT.USAGE;
  }
  try {
    return await runCommand(command, argv.slice(command.name.split(" ").length), env, out);
  } catch (err) {
    return reportError(err, out);
  }
}

const code = await main(process.argv.slice(2));
// Let stdout drain before leaving (a pipe may still hold output).
process.stdout.write("", () => process.exit(code));
