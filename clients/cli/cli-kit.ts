/**
 * What every `clipper` subcommand shares: the global options (addresses,
 * --json, --timeout) with their env variables, argument parsing with
 * node:util parseArgs, --help text, output (human tables or JSON), and the
 * mapping of failures to one-line messages and exit codes.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { credentials as grpcCredentials, status as Status, type ChannelCredentials } from "@grpc/grpc-js";
import {
  createAdminClient,
  createHeartbeatClient,
  createPredictClient,
  DEFAULT_GATEWAY_ADDRESS,
  DEFAULT_MANAGEMENT_ADDRESS,
  isServiceError,
  statusName,
  type AdminApi,
  type ClientOptions,
  type HeartbeatApi,
  type PredictApi,
} from "../client.js";
import { resolveToken } from "./local-token.js";

/** Exit codes of every command. */
export const EXIT = {
  OK: 0,
  /** The server answered with an error (or a prediction failed). */
  FAILED: 1,
  /** Bad command line. */
  USAGE: 2,
  /** The service could not be reached, or is unavailable (e.g. its Redis is down). */
  UNAVAILABLE: 3,
} as const;

/** An option of a command, for parseArgs and --help. */
export interface OptionDef {
  readonly type: "string" | "boolean";
  readonly help: string;
  readonly short?: string;
  readonly multiple?: boolean;
  /** Shown in --help as the value's name, e.g. "N". */
  readonly value?: string;
}

/** Global options every command takes; each has an env variable. */
const GLOBAL_OPTIONS = {
  management: { type: "string", value: "HOST:PORT", help: `management's gRPC address (env CLIPPER_MANAGEMENT_ADDR, default ${DEFAULT_MANAGEMENT_ADDRESS})` },
  gateway: { type: "string", value: "HOST:PORT", help: `the gateway's gRPC address (env CLIPPER_GATEWAY_ADDR, default ${DEFAULT_GATEWAY_ADDRESS})` },
  "gateway-http": { type: "string", value: "HOST:PORT", help: "the gateway's HTTP address, for /metrics (env CLIPPER_GATEWAY_HTTP_ADDR, default 127.0.0.1:1337)" },
  json: { type: "boolean", help: "print JSON (the response message in protobuf JSON) instead of tables" },
  timeout: { type: "string", value: "MS", help: "deadline of each call in ms (env CLIPPER_TIMEOUT_MS; default 10000, 90000 for deploy and set-version)" },
  token: { type: "string", value: "TOKEN", help: "sent as 'authorization: Bearer TOKEN' (env CLIPPER_TOKEN; default: the token clipper up saved in <data-dir>/token)" },
  "tls-ca": { type: "string", value: "FILE", help: "call over TLS, trusting this PEM CA (env CLIPPER_CLIENT_TLS_CA)" },
  "tls-cert": { type: "string", value: "FILE", help: "client certificate (PEM) for mutual TLS, with --tls-key (env CLIPPER_CLIENT_TLS_CERT)" },
  "tls-key": { type: "string", value: "FILE", help: "private key (PEM) of --tls-cert (env CLIPPER_CLIENT_TLS_KEY)" },
  "data-dir": { type: "string", value: "DIR", help: "where clipper up keeps Redis data, logs and its token (env CLIPPER_DATA_DIR, default .clipper)" },
  help: { type: "boolean", short: "h", help: "print this help" },
} as const satisfies Record<string, OptionDef>;

/** Env variables of the global options. */
const GLOBAL_ENV = {
  management: "CLIPPER_MANAGEMENT_ADDR",
  gateway: "CLIPPER_GATEWAY_ADDR",
  gatewayHttp: "CLIPPER_GATEWAY_HTTP_ADDR",
  timeout: "CLIPPER_TIMEOUT_MS",
} as const;

/** Resolved global options. */
export interface Globals {
  readonly management: string;
  readonly gateway: string;
  readonly gatewayHttp: string;
  readonly json: boolean;
  /** Per-call deadline in ms, or undefined for each client's default. */
  readonly timeoutMs: number | undefined;
  /** The token every call carries, or undefined for none. */
  readonly token: string | undefined;
  /** TLS channel credentials, or undefined for plaintext. */
  readonly credentials: ChannelCredentials | undefined;
  /** The --tls-ca PEM, for HTTPS calls (/metrics); undefined without one. */
  readonly tlsCa: Buffer | undefined;
}

/** A failure with its exit code and a one-line message. */
export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

export const usageError = (message: string): CliError => new CliError(EXIT.USAGE, message);

/** What a command's run() gets. */
export interface CommandContext {
  readonly positionals: readonly string[];
  readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>;
  /** Arguments after `--`, untouched. */
  readonly rest: readonly string[];
  readonly globals: Globals;
  readonly out: Output;
}

/** One subcommand, e.g. `apps create`. */
export interface Command {
  /** Words that select it, e.g. "apps create". */
  readonly name: string;
  /** Positional arguments for --help, e.g. "NAME". */
  readonly args: string;
  readonly summary: string;
  /** Extra --help text (examples). */
  readonly details?: string;
  readonly options: Readonly<Record<string, OptionDef>>;
  readonly minArgs: number;
  readonly maxArgs: number;
  /** True when arguments after `--` are allowed. */
  readonly takesRest?: boolean;
  /** Resolves with the exit code (default 0). */
  run(ctx: CommandContext): Promise<number | void>;
}

/** Parses a command's arguments (everything after its name) and runs it. */
export async function runCommand(command: Command, argv: readonly string[], env: NodeJS.ProcessEnv, out: Output): Promise<number> {
  const dash = argv.indexOf("--");
  const own = dash === -1 ? argv : argv.slice(0, dash);
  const rest = dash === -1 ? [] : argv.slice(dash + 1);
  const options = { ...GLOBAL_OPTIONS, ...command.options };
  let parsed: { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...own], options: toParseArgs(options), allowPositionals: true, strict: true });
  } catch (err) {
    throw usageError(`${(err as Error).message.split("\n")[0]} (see clipper ${command.name} --help)`);
  }
  if (parsed.values.help === true) {
    out.text(commandHelp(command));
    return EXIT.OK;
  }
  const n = parsed.positionals.length;
  if (n < command.minArgs || n > command.maxArgs) {
    throw usageError(`clipper ${command.name} takes ${command.args === "" ? "no arguments" : command.args}, got ${n === 0 ? "none" : parsed.positionals.join(" ")} (see --help)`);
  }
  if (rest.length > 0 && command.takesRest !== true) throw usageError(`clipper ${command.name} takes no arguments after --`);
  const globals = resolveGlobals(parsed.values, env);
  out.json = globals.json;
  const code = await command.run({ positionals: parsed.positionals, values: parsed.values as CommandContext["values"], rest, globals, out });
  return code ?? EXIT.OK;
}

function toParseArgs(options: Record<string, OptionDef>): Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> {
  const o: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {};
  for (const [name, d] of Object.entries(options)) {
    o[name] = { type: d.type, ...(d.short === undefined ? {} : { short: d.short }), ...(d.multiple === true ? { multiple: true } : {}) };
  }
  return o;
}

function resolveGlobals(values: Record<string, unknown>, env: NodeJS.ProcessEnv): Globals {
  const pick = (flag: string, envName: string, fallback: string): string => {
    const v = values[flag];
    return typeof v === "string" ? v : (env[envName] ?? fallback);
  };
  const timeout = pick("timeout", GLOBAL_ENV.timeout, "");
  if (timeout !== "" && !/^[1-9]\d*$/.test(timeout)) throw usageError(`--timeout: '${timeout}' is not a positive whole number of ms`);
  const addr = (flag: string, envName: string, fallback: string): string => {
    const a = pick(flag, envName, fallback).replace(/^(grpc|http):\/\//, "");
    if (!/^[^\s/]+:\d+$/.test(a)) throw usageError(`--${flag} (or ${envName}): '${a}' is not HOST:PORT`);
    return a;
  };
  return {
    management: addr("management", GLOBAL_ENV.management, DEFAULT_MANAGEMENT_ADDRESS),
    gateway: addr("gateway", GLOBAL_ENV.gateway, DEFAULT_GATEWAY_ADDRESS),
    gatewayHttp: addr("gateway-http", GLOBAL_ENV.gatewayHttp, "127.0.0.1:1337"),
    json: values.json === true,
    timeoutMs: timeout === "" ? undefined : Number(timeout),
    ...tlsOptions(pick("tls-ca", "CLIPPER_CLIENT_TLS_CA", ""), pick("tls-cert", "CLIPPER_CLIENT_TLS_CERT", ""), pick("tls-key", "CLIPPER_CLIENT_TLS_KEY", "")),
    token: resolveToken(
      { token: typeof values.token === "string" ? values.token : undefined, dataDir: typeof values["data-dir"] === "string" ? values["data-dir"] : undefined },
      env,
    ),
  };
}

/** --help of one command. */
function commandHelp(c: Command): string {
  const lines = [`Usage: clipper ${c.name}${c.args === "" ? "" : ` ${c.args}`} [options]`, "", c.summary];
  if (c.details !== undefined) lines.push("", c.details);
  lines.push("", "Options:", ...optionLines(c.options), "", "Global options:", ...optionLines(GLOBAL_OPTIONS));
  return lines.join("\n");
}

function optionLines(options: Record<string, OptionDef>): string[] {
  return Object.entries(options).map(([name, d]) => {
    const flag = `${d.short === undefined ? "    " : `-${d.short}, `}--${name}${d.type === "string" ? ` ${d.value ?? "VALUE"}` : ""}`;
    return `  ${flag.padEnd(30)} ${d.help}${d.multiple === true ? " (repeatable)" : ""}`;
  });
}

// ------------------------------------------------------------------ output

/** Where commands print: results on stdout, progress and errors on stderr. */
export class Output {
  json = false;
  constructor(
    readonly stdout: NodeJS.WritableStream & { isTTY?: boolean },
    readonly stderr: NodeJS.WritableStream & { isTTY?: boolean },
  ) {}

  text(s: string): void {
    this.stdout.write(s.endsWith("\n") ? s : `${s}\n`);
  }

  /** Prints `json` (one line) with --json, else the human form. */
  result(json: unknown, human: () => string): void {
    this.text(this.json ? JSON.stringify(json) : human());
  }

  /** A one-line failure on stderr (JSON with --json); `showCode` false keeps the code out of the human line. */
  error(code: string, message: string, showCode = true): void {
    const line = this.json ? JSON.stringify({ error: { code, message } }) : `clipper: ${showCode ? `${code}: ` : ""}${message}`;
    this.stderr.write(`${line}\n`);
  }
}

/** A left-aligned text table with a header row. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return "(none)";
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/**
 * A message in protobuf JSON with every field present (as the HTTP API
 * answers): `json` is ts-proto's toJSON, which leaves out default values;
 * they are filled back in from the message object itself.
 */
export function fullJson(message: unknown, json: unknown): unknown {
  if (json === undefined) return plain(message);
  if (Array.isArray(json) && Array.isArray(message)) return json.map((j, i) => fullJson(message[i], j));
  if (isRecord(json) && isRecord(message) && !(message instanceof Date) && !Buffer.isBuffer(message)) {
    const out: Record<string, unknown> = {};
    for (const k of new Set([...Object.keys(message), ...Object.keys(json)])) {
      const v = fullJson(message[k], json[k]);
      if (v !== undefined) out[k] = v;
    }
    return out;
  }
  return json;
}

function plain(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString();
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  if (Array.isArray(v)) return v.map(plain);
  if (isRecord(v)) return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, plain(x)]));
  return v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}

// ------------------------------------------------------------------ errors

const TARGET = Symbol("clipper target");

/**
 * Wraps a client so that its failures name the server they came from
 * ("management at 127.0.0.1:50052"), for the one-line error.
 */
function tagged<T extends object>(api: T, target: string): T {
  return new Proxy(api, {
    get(obj, prop, receiver) {
      const v = Reflect.get(obj, prop, receiver) as unknown;
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        const r = (v as (...a: unknown[]) => unknown).apply(obj, args);
        if (r instanceof Promise) {
          return r.catch((err: unknown) => {
            if (typeof err === "object" && err !== null) (err as Record<symbol, string>)[TARGET] = target;
            throw err;
          });
        }
        return r;
      };
    },
  });
}

/** Turns anything a command threw into an exit code and one line on stderr. */
export function reportError(err: unknown, out: Output): number {
  if (err instanceof CliError) {
    out.error(err.exitCode === EXIT.USAGE ? "USAGE" : "FAILED", err.message, false);
    return err.exitCode;
  }
  if (isServiceError(err)) {
    const details = (err.details || err.message).replace(/\s+/g, " ").trim();
    if (err.code === Status.UNAVAILABLE && /No connection established|ECONNREFUSED|connect|Connection dropped/i.test(details)) {
      const target = (err as unknown as Record<symbol, string | undefined>)[TARGET] ?? "the server";
      out.error("UNAVAILABLE", `cannot reach ${target} (${details}); is the stack running (clipper up)? Set --management/--gateway or CLIPPER_MANAGEMENT_ADDR/CLIPPER_GATEWAY_ADDR`);
      return EXIT.UNAVAILABLE;
    }
    out.error(statusName(err.code), details);
    return err.code === Status.UNAVAILABLE || err.code === Status.DEADLINE_EXCEEDED ? EXIT.UNAVAILABLE : EXIT.FAILED;
  }
  out.error("INTERNAL", err instanceof Error ? err.message : String(err));
  return EXIT.FAILED;
}

/** An integer flag value, or a usage error naming the flag. */
export function intOption(values: CommandContext["values"], name: string, fallback: number, min = 0): number {
  const v = values[name];
  if (v === undefined) return fallback;
  if (typeof v !== "string" || !/^-?\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) {
    throw usageError(`--${name}: '${String(v)}' is not a whole number >= ${min}`);
  }
  return Number(v);
}

/** A string flag value, or `fallback`. */
export function strOption(values: CommandContext["values"], name: string, fallback = ""): string {
  const v = values[name];
  return typeof v === "string" ? v : fallback;
}

// ------------------------------------------------------------------ clients

/** An Admin client for the command's --management address; close it when done. */
export function adminClient(g: Globals): AdminApi {
  return tagged(createAdminClient(g.management, clientOptions(g)), `management at ${g.management}`);
}

/** A Predict client for the command's --gateway address. */
export function predictClient(g: Globals): PredictApi {
  return tagged(createPredictClient(g.gateway, clientOptions(g)), `the gateway at ${g.gateway}`);
}

/** A Heartbeat client for the command's --gateway address. */
export function heartbeatClient(g: Globals): HeartbeatApi {
  return tagged(createHeartbeatClient(g.gateway, clientOptions(g)), `the gateway at ${g.gateway}`);
}

function clientOptions(g: Globals): ClientOptions {
  return {
    ...(g.timeoutMs === undefined ? {} : { deadlineMs: g.timeoutMs }),
    ...(g.token === undefined ? {} : { token: g.token }),
    ...(g.credentials === undefined ? {} : { credentials: g.credentials }),
  };
}

/** grpc-js TLS credentials (and the CA, for HTTPS) from the --tls-* files; undefined when none is given. */
function tlsOptions(ca: string, cert: string, key: string): { credentials: ChannelCredentials | undefined; tlsCa: Buffer | undefined } {
  if (ca === "" && cert === "" && key === "") return { credentials: undefined, tlsCa: undefined };
  if ((cert === "") !== (key === "")) throw usageError("--tls-cert and --tls-key go together");
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw usageError(`--${flag}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  // Without --tls-ca the system's trusted CAs verify the server.
  const caPem = ca === "" ? undefined : read("tls-ca", ca);
  return {
    credentials: grpcCredentials.createSsl(caPem ?? null, key === "" ? null : read("tls-key", key), cert === "" ? null : read("tls-cert", cert)),
    tlsCa: caPem,
  };
}

/** Runs `fn` with a client and closes it afterwards. */
export async function withClient<C extends { close(): void }, T>(client: C, fn: (c: C) => Promise<T>): Promise<T> {
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}
