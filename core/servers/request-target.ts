/**
 * What routes read of a request's target (`req.url`): its path as WHATWG
 * URL parsing gives it (`new URL(target, base).pathname`: dot segments
 * resolved, some characters percent-encoded, a leading `//` read as a
 * host), and its query parameters, parsed only when a route asks for them.
 *
 * Most targets are plain paths that URL parsing returns unchanged, and
 * those skip the parser: a URL object per request cost ~0.4 µs and ~0.8 KB
 * of garbage on the predict paths (bench/README.md, round two §15). Any
 * target it could change (a dot, a percent sign, a backslash, a fragment,
 * a character outside printable ASCII, a leading `//`) still goes through
 * URL, so both ways give the same answer (test/core/request-target.test.ts
 * checks them against each other).
 */
import { invalidArgument } from "../errors.js";

export interface RequestTarget {
  readonly pathname: string;
  readonly searchParams: URLSearchParams;
}

/** A path of characters URL parsing keeps as they are, not starting with `//`, and an optional query of printable ASCII without `#`. */
const PLAIN = /^\/(?!\/)[A-Za-z0-9\-_~!$&'()*+,;=:@/]*(?:\?[\x21-\x22\x24-\x7e]*)?$/;

/** The base relative targets resolve against; only the path and query are ever read. */
const BASE = "http://localhost";

class PlainTarget implements RequestTarget {
  readonly pathname: string;
  /** The query with its leading "?" (URLSearchParams drops one, and only one), or "". */
  readonly #query: string;
  #params: URLSearchParams | null = null;

  constructor(pathname: string, query: string) {
    this.pathname = pathname;
    this.#query = query;
  }

  get searchParams(): URLSearchParams {
    return (this.#params ??= new URLSearchParams(this.#query));
  }
}

/** The target of a request whose `req.url` is `raw` ("/" when absent); INVALID_ARGUMENT (400) when it is not a URL path at all (e.g. `//%`, a host that is not one). */
export function requestTarget(raw: string | undefined): RequestTarget {
  const target = raw ?? "/";
  if (!PLAIN.test(target)) {
    try {
      return new URL(target, BASE);
    } catch {
      throw invalidArgument("INVALID_REQUEST", `the request target ${JSON.stringify(target.slice(0, 200))} is not a URL path`);
    }
  }
  const q = target.indexOf("?");
  return q < 0 ? new PlainTarget(target, "") : new PlainTarget(target.slice(0, q), target.slice(q));
}

/** Text taken from a path with its percent-encoding decoded; null when that encoding is malformed (a bad %XX, or bytes that are not UTF-8). */
export function decodedPathText(raw: string): string | null {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}
