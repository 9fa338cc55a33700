import { parseArgs } from "node:util";
import { parseRedisUrl } from "./redis-url.js";
import { DEFAULT_STREAM_STALL_MS } from "./servers/bounded-stream.js";

/** How one option's text is checked and converted. */
export type OptionKind = "port" | "count" | "bytes" | "string" | "redis-url" | "host" | "level" | "flag";

/** One command-line option: `--flag`, its env variable, default and help. */
export interface OptionSpec {
  readonly kind: OptionKind;
  /** Env variable consulted when the flag is absent (e.g. CLIPPER_REDIS_URL). */
  readonly env: string;
  /** As text, checked like a value from env; a `flag`'s default is "false" or "true". */
  readonly default: string;
  readonly help: string;
}

type ValueOf<K extends OptionKind> = K extends "port" | "count" | "bytes" ? number : K extends "flag" ? boolean : string;
/** The parsed config: one typed value per option, keyed by flag name. */
export type ConfigOf<S extends Record<string, OptionSpec>> = { readonly [K in keyof S]: ValueOf<S[K]["kind"]> };

export type ParsedConfig<S extends Record<string, OptionSpec>> =
  | { kind: "ok"; config: ConfigOf<S> }
  | { kind: "help"; text: string }
  | { kind: "error"; error: string };

/** Options every server process shares. */
export const COMMON_OPTIONS = {
  "redis-url": { kind: "redis-url", env: "CLIPPER_REDIS_URL", default: "redis://127.0.0.1:6379", help: "Redis holding Clipper's metadata (rediss:// for TLS; redis+sentinel://SENTINEL:PORT,…/MASTER_NAME[/DB] or rediss+sentinel:// through Redis Sentinel)" },
  "redis-tls-ca": { kind: "string", env: "CLIPPER_REDIS_TLS_CA", default: "", help: "PEM CA bundle that signs a rediss:// Redis's certificate (default: the system's CAs)" },
  host: { kind: "host", env: "CLIPPER_HOST", default: "127.0.0.1", help: "address to listen on (0.0.0.0 for every interface)" },
  "log-level": { kind: "level", env: "CLIPPER_LOG_LEVEL", default: "info", help: "fatal, error, warn, info, debug or trace" },
  "auth-tokens": {
    kind: "string",
    env: "CLIPPER_AUTH_TOKENS",
    default: "",
    help: "tokens file, one '<scopes> <token>' per line (scopes: predict, read, admin, deploy; a token may be written sha256:<hex>); every API then needs 'authorization: Bearer <token>' (health stays open); re-read on SIGHUP",
  },
  "auth-anonymous": { kind: "string", env: "CLIPPER_AUTH_ANONYMOUS", default: "", help: "scopes granted to calls without a token, e.g. predict,read (needs --auth-tokens)" },
  insecure: {
    kind: "flag",
    env: "CLIPPER_INSECURE",
    default: "false",
    help: "start on a non-loopback --host even without TLS, tokens (and, for the gateway, worker authentication); the server then says so in its log and /readyz",
  },
  "tls-cert": { kind: "string", env: "CLIPPER_TLS_CERT", default: "", help: "PEM certificate chain: serve TLS on the gRPC and HTTP ports (with --tls-key; HTTPS offers h2 and HTTP/1.1 by ALPN); re-read on SIGHUP" },
  "tls-key": { kind: "string", env: "CLIPPER_TLS_KEY", default: "", help: "PEM private key of --tls-cert" },
  "tls-client-ca": { kind: "string", env: "CLIPPER_TLS_CLIENT_CA", default: "", help: "PEM CA bundle: require client certificates it signed (mutual TLS)" },
  "stream-stall-ms": {
    kind: "count",
    env: "CLIPPER_STREAM_STALL_MS",
    default: String(DEFAULT_STREAM_STALL_MS),
    help: "how long a server stream (PredictStream, WatchWorkers, reflection) may stay blocked on a client that reads nothing, ms; it then ends with RESOURCE_EXHAUSTED",
  },
  "exit-with-stdin": {
    kind: "flag",
    env: "CLIPPER_EXIT_WITH_STDIN",
    default: "false",
    help: "exit at once when standard input reaches its end: for a supervisor that keeps a pipe to it open (clipper up), so the server never outlives it, even killed with SIGKILL",
  },
} as const satisfies Record<string, OptionSpec>;

/** What a flag's env variable may say, in any case. */
const FLAG_VALUES: ReadonlyMap<string, boolean> = new Map([
  ["1", true],
  ["true", true],
  ["0", false],
  ["false", false],
]);

const LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

/**
 * Parses flags, then `CLIPPER_*` env, then defaults (in that order of
 * precedence) into a frozen typed object. Unknown flags and bad values are
 * errors naming the flag; nothing is thrown.
 */
export function parseConfig<S extends Record<string, OptionSpec>>(
  command: string,
  specs: S,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): ParsedConfig<S> {
  let values: Record<string, string | boolean | undefined>;
  try {
    const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
    // A flag takes no value on the command line; its env variable says 1/true/0/false.
    for (const [name, spec] of Object.entries(specs)) options[name] = { type: spec.kind === "flag" ? "boolean" : "string" };
    values = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    return { kind: "error", error: `${(err as Error).message}\n\n${usage(command, specs)}` };
  }
  if (values.help === true) return { kind: "help", text: usage(command, specs) };
  const config: Record<string, string | number | boolean> = {};
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.kind === "flag" && values[name] === true) {
      config[name] = true;
      continue;
    }
    const fromFlag = values[name];
    const raw = typeof fromFlag === "string" ? fromFlag : (env[spec.env] ?? spec.default);
    const source = typeof fromFlag === "string" ? `--${name}` : env[spec.env] !== undefined ? spec.env : `default of --${name}`;
    const checked = convert(spec.kind, raw);
    if (!checked.ok) return { kind: "error", error: `${source}: ${checked.error}` };
    config[name] = checked.value;
  }
  return { kind: "ok", config: Object.freeze(config) as ConfigOf<S> };
}

/** `raw` as a whole number ≥ 0 (digits only, at most 2^53 - 1), or null: the rule of "count" and "bytes" options, and of options that also take a word. */
export function wholeNumber(raw: string): number | null {
  const n = Number(raw);
  return /^\d+$/.test(raw) && Number.isSafeInteger(n) ? n : null;
}

function convert(kind: OptionKind, raw: string): { ok: true; value: string | number | boolean } | { ok: false; error: string } {
  switch (kind) {
    case "flag": {
      const b = FLAG_VALUES.get(raw.toLowerCase());
      return b === undefined ? { ok: false, error: `'${raw}' is not a boolean (1, true, 0 or false)` } : { ok: true, value: b };
    }
    case "port": {
      const n = Number(raw);
      return /^\d+$/.test(raw) && n <= 65535 ? { ok: true, value: n } : { ok: false, error: `'${raw}' is not a port (0-65535; 0 picks a free one)` };
    }
    case "count":
    case "bytes": {
      const n = wholeNumber(raw);
      return n !== null ? { ok: true, value: n } : { ok: false, error: `'${raw}' is not a whole number >= 0` };
    }
    case "redis-url": {
      const r = parseRedisUrl(raw);
      return r.ok ? { ok: true, value: r.url } : { ok: false, error: r.error };
    }
    case "host":
      return raw.trim() === "" ? { ok: false, error: "the host must not be empty" } : { ok: true, value: raw.trim() };
    case "level":
      return LEVELS.has(raw) ? { ok: true, value: raw } : { ok: false, error: `'${raw}' is not a log level (${[...LEVELS].join(", ")})` };
    case "string":
      return { ok: true, value: raw };
  }
}

/** The --help text, generated from the specs. */
function usage(command: string, specs: Record<string, OptionSpec>): string {
  const lines = Object.entries(specs).map(([name, s]) =>
    s.kind === "flag"
      ? `  --${name.padEnd(22)} ${s.help}\n  ${"".padEnd(24)} env ${s.env}=1|true|0|false, default ${s.default}`
      : `  --${name.padEnd(22)} ${s.help}\n  ${"".padEnd(24)} env ${s.env}, default ${s.default === "" ? '""' : s.default}`,
  );
  return `Usage: ${command} [options]\n\nOptions:\n${lines.join("\n")}\n  --help                   print this text`;
}

/**
 * For a command's entry point: the parsed config, or the process exits —
 * 0 after printing --help, 2 after printing what is wrong with the flags.
 */
export function configOrExit<S extends Record<string, OptionSpec>>(command: string, specs: S): ConfigOf<S> {
  return exitUnlessOk(command, parseConfig(command, specs, process.argv.slice(2), process.env));
}

/** Exits on a help or error outcome of any config parser; returns the config otherwise. */
export function exitUnlessOk<C>(command: string, parsed: { kind: "ok"; config: C } | { kind: "help"; text: string } | { kind: "error"; error: string }): C {
  if (parsed.kind === "ok") return parsed.config;
  if (parsed.kind === "help") {
    process.stdout.write(`${parsed.text}\n`);
    process.exit(0);
  }
  process.stderr.write(`${command}: ${parsed.error}\n`);
  process.exit(2);
}
