/**
 * The one home of what a Redis URL (`--redis-url`, CLIPPER_REDIS_URL) may
 * say, shared by the servers and `clipper up`: so it imports nothing but
 * Node built-ins.
 *
 *   redis://[[user]:password@]host[:port][/db]              one Redis
 *   rediss://…                                              the same over TLS
 *   redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/NAME[/db]
 *       [?sentinel_username=U&sentinel_password=P]          Redis Sentinel
 *   rediss+sentinel://…                                     Sentinel, TLS to sentinels and Redis
 *
 * For Sentinel the hosts are sentinels (port 26379 by default), NAME is
 * the monitored master's name, the user and password are the Redis
 * servers', and the query names the sentinels' own credentials when they
 * have some (`requirepass` in sentinel.conf).
 */

/** A sentinel's address. */
export interface SentinelAddress {
  readonly host: string;
  readonly port: number;
}

/** Where Redis is, as a URL says it. */
export type RedisTarget =
  | { readonly kind: "direct"; readonly tls: boolean; readonly host: string; readonly port: number }
  | {
      readonly kind: "sentinel";
      readonly tls: boolean;
      readonly sentinels: readonly SentinelAddress[];
      /** The master group's name in the sentinels' configuration. */
      readonly name: string;
      readonly db: number;
      readonly username: string;
      readonly password: string;
      readonly sentinelUsername: string;
      readonly sentinelPassword: string;
    };

export type RedisUrlParse = { ok: true; url: string; target: RedisTarget } | { ok: false; error: string };

const DEFAULT_PORT = 6379;
const DEFAULT_SENTINEL_PORT = 26379;
/** More would be a mistake, not a deployment (Sentinel wants 3 or 5). */
const MAX_SENTINELS = 16;
/** Redis's default `databases`; the catalog needs DB 1–8 anyway, so the db only picks the commands connection's first SELECT. */
const MAX_DB = 15;
const SENTINEL_QUERY = new Set(["sentinel_username", "sentinel_password"]);
/** The master group name: Sentinel takes any word; this keeps it printable and unambiguous in a URL. */
const GROUP_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const SENTINEL_URL = /^(rediss?)\+sentinel:\/\/(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/i;

const SHAPES = "expected redis://HOST:PORT, rediss://…, or redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER_NAME";

/** Parses and checks a Redis URL given by flag or env; the error says what is wrong and what is expected. */
export function parseRedisUrl(text: string): RedisUrlParse {
  const scheme = /^([a-z+]+):/i.exec(text)?.[1]?.toLowerCase();
  if (scheme === "redis+sentinel" || scheme === "rediss+sentinel") return parseSentinelUrl(text);
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return { ok: false, error: `invalid Redis URL '${redactRedisUrl(text)}': ${SHAPES}` };
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") {
    return { ok: false, error: `invalid Redis URL '${redactRedisUrl(text)}': the scheme must be redis://, rediss://, redis+sentinel:// or rediss+sentinel://` };
  }
  const port = u.port === "" ? DEFAULT_PORT : Number(u.port);
  return { ok: true, url: text, target: { kind: "direct", tls: u.protocol === "rediss:", host: u.hostname, port } };
}

function parseSentinelUrl(text: string): RedisUrlParse {
  const fail = (why: string): RedisUrlParse => ({ ok: false, error: `invalid Redis Sentinel URL '${redactRedisUrl(text)}': ${why}` });
  const m = SENTINEL_URL.exec(text);
  if (m === null) return fail("expected redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/MASTER_NAME[/DB]");
  const [, scheme, userinfo, hostList, path, query] = m;
  const credentials = splitUserinfo(userinfo ?? "");
  if (credentials === null) return fail("the user or password is not valid percent-encoding");
  const sentinels: SentinelAddress[] = [];
  for (const part of (hostList ?? "").split(",")) {
    const address = parseHostPort(part.trim());
    if (address === null) return fail(`'${part}' is not HOST[:PORT] of a sentinel`);
    sentinels.push(address);
  }
  if (sentinels.length > MAX_SENTINELS) return fail(`at most ${MAX_SENTINELS} sentinels`);
  const segments = (path ?? "").split("/").slice(1);
  const name = segments[0] ?? "";
  if (!GROUP_NAME.test(name)) return fail("the path must name the master group (/MASTER_NAME: letters, digits, '._-'), as in the sentinels' 'sentinel monitor' line");
  let db = 0;
  if (segments.length > 2 || (segments.length === 2 && segments[1] !== "")) {
    const d = segments[1] ?? "";
    if (segments.length > 2 || !/^\d{1,2}$/.test(d) || Number(d) > MAX_DB) return fail(`after the master name only a database number 0-${MAX_DB} may follow`);
    db = Number(d);
  }
  const params = new URLSearchParams(query ?? "");
  for (const key of params.keys()) {
    if (!SENTINEL_QUERY.has(key)) return fail(`unknown parameter '${key}' (known: ${[...SENTINEL_QUERY].join(", ")})`);
  }
  return {
    ok: true,
    url: text,
    target: {
      kind: "sentinel",
      tls: scheme!.toLowerCase() === "rediss",
      sentinels,
      name,
      db,
      username: credentials.username,
      password: credentials.password,
      sentinelUsername: params.get("sentinel_username") ?? "",
      sentinelPassword: params.get("sentinel_password") ?? "",
    },
  };
}

function splitUserinfo(userinfo: string): { username: string; password: string } | null {
  const at = userinfo.indexOf(":");
  try {
    return at < 0
      ? { username: decodeURIComponent(userinfo), password: "" }
      : { username: decodeURIComponent(userinfo.slice(0, at)), password: decodeURIComponent(userinfo.slice(at + 1)) };
  } catch {
    return null;
  }
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`, by the WHATWG URL parser's rules for a host. */
function parseHostPort(text: string): SentinelAddress | null {
  if (text === "" || /[/?#@\s]/.test(text)) return null;
  let u: URL;
  try {
    u = new URL(`redis://${text}`);
  } catch {
    return null;
  }
  if (u.hostname === "") return null;
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: u.port === "" ? DEFAULT_SENTINEL_PORT : Number(u.port) };
}

/** Whether a (checked) URL asks for TLS: rediss:// or rediss+sentinel://. */
export function redisUrlUsesTls(text: string): boolean {
  return /^rediss(\+sentinel)?:/i.test(text);
}

/** Where a target is, for log lines and error messages: never a password. */
export function describeRedisTarget(target: RedisTarget): string {
  if (target.kind === "direct") return target.host.includes(":") ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  const hosts = target.sentinels.map((s) => (s.host.includes(":") ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`));
  return `master '${target.name}' via sentinels ${hosts.join(",")}`;
}

/** A Redis URL as it may be shown: passwords (the Redis one and a sentinel_password) replaced by ***. */
export function redactRedisUrl(text: string): string {
  return text
    .replace(/^([a-z+]+:\/\/[^:@/?#]*:)[^@/?#]*@/i, (_, head: string) => `${head}***@`)
    .replace(/([?&]sentinel_password=)[^&#]*/i, (_, head: string) => `${head}***`);
}
