/**
 * Which names and addresses stay on this machine. One rule for "is this a
 * loopback bind" (a server's --host) and "does this Host header name this
 * machine's loopback" (request-guards.ts), so the two never disagree.
 */
import { isIP } from "node:net";

/**
 * True for `localhost` (and names under `.localhost`, which RFC 6761 and
 * browsers resolve to loopback themselves, never through DNS), any address
 * in 127.0.0.0/8, `::1`, and IPv4-mapped forms of those. Case and a trailing
 * dot are ignored; IPv6 may be given with or without brackets.
 */
export function isLoopbackHost(host: string): boolean {
  const h = normalizeHostname(host);
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) return h === "::1" || h === "0:0:0:0:0:0:0:1" || /^::ffff:127\./.test(h);
  return false;
}

/** Lower case, without IPv6 brackets or a trailing dot: the form hosts are compared in. */
export function normalizeHostname(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h;
}

/**
 * The host name of a `Host` header (or an --allowed-hosts entry) without its
 * port: `example.com:1338` → `example.com`, `[::1]:1338` → `::1`. Null when
 * the text is not a host (empty, or brackets that do not close).
 */
export function hostnameOfAuthority(authority: string): string | null {
  const a = authority.trim();
  if (a === "") return null;
  if (a.startsWith("[")) {
    const end = a.indexOf("]");
    if (end < 0) return null;
    const rest = a.slice(end + 1);
    if (rest !== "" && !/^:\d*$/.test(rest)) return null;
    return normalizeHostname(a.slice(0, end + 1));
  }
  // A bare IPv6 address (more than one colon) has no port to strip.
  if (a.indexOf(":") !== a.lastIndexOf(":")) return normalizeHostname(a);
  const colon = a.indexOf(":");
  return normalizeHostname(colon < 0 ? a : a.slice(0, colon));
}
