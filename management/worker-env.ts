/**
 * The environment worker processes start from. Model code runs in them, so
 * they get what a program needs to run on this host (its paths, user and
 * locale) and tracing settings, never management's own secrets: no
 * CLIPPER_* variable (tokens, keys, the Redis URL with its password), no
 * OTLP exporter headers (they often carry credentials), nothing else it
 * happens to have. A deployment's spec adds what its model needs.
 */

/** Variables passed on by name: where programs and libraries are found, who and where the user is. */
const INHERITED_NAMES: ReadonlySet<string> = new Set([
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "LANG",
  "LANGUAGE",
  "TZ",
  "TMPDIR",
  // Module lookup paths for Clipper's Python containers and Node models, as PATH is for programs.
  "PYTHONPATH",
  "VIRTUAL_ENV",
  "NODE_PATH",
]);

/**
 * Passed on by prefix: locale categories, and OpenTelemetry's settings so a
 * worker's spans join the gateway's traces (otlp-export.test.ts).
 */
const INHERITED_PREFIXES: readonly string[] = ["LC_", "OTEL_"];

/** Never passed on even when a prefix matches: OTEL_EXPORTER_OTLP_HEADERS and its per-signal forms hold API keys. */
const SECRET_PATTERN = /HEADERS/;

/**
 * The allow-listed part of `parent`, plus the variables named in `extra`
 * (the operator's --worker-inherit-env; never meant for secrets).
 */
export function workerEnvironment(parent: NodeJS.ProcessEnv, extra: readonly string[] = []): NodeJS.ProcessEnv {
  const wanted = new Set(extra);
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(parent)) {
    if (value === undefined) continue;
    if (wanted.has(name) || isInherited(name)) env[name] = value;
  }
  return env;
}

function isInherited(name: string): boolean {
  if (INHERITED_NAMES.has(name)) return true;
  return INHERITED_PREFIXES.some((p) => name.startsWith(p)) && !SECRET_PATTERN.test(name);
}
