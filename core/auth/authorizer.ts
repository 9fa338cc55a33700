import { timingSafeEqual } from "node:crypto";
import { status as Status } from "@grpc/grpc-js";
import { ServingError } from "../errors.js";
import type { Access, Scope } from "./scopes.js";
import { tokenHash, type TokenEntry } from "./token-file.js";

/** The HTTP challenge that goes with every 401 (RFC 6750). */
export const BEARER_CHALLENGE = { "www-authenticate": 'Bearer realm="clipper"' } as const;

/**
 * Decides whether a call may proceed, from its `authorization` value and
 * the access it needs. Tokens are compared by their SHA-256 in constant
 * time, against every entry (no early exit), and never logged. A call
 * without a token gets the anonymous scopes. The token table can be
 * replaced while serving (SIGHUP).
 */
export class Authorizer {
  #tokens: readonly TokenEntry[];
  readonly #anonymous: ReadonlySet<Scope>;

  constructor(tokens: readonly TokenEntry[], anonymous: ReadonlySet<Scope>) {
    this.#tokens = tokens;
    this.#anonymous = anonymous;
  }

  /** Swaps in a new token table (calls already admitted keep running). */
  replaceTokens(tokens: readonly TokenEntry[]): void {
    this.#tokens = tokens;
  }

  get tokenCount(): number {
    return this.#tokens.length;
  }

  /**
   * Null when the call may proceed; otherwise the error to answer with:
   * UNAUTHENTICATED (HTTP 401, with a Bearer challenge) for a missing,
   * malformed or unknown token, PERMISSION_DENIED (403) naming the scope
   * for a known token without it.
   */
  check(authorization: string | undefined, access: Access): ServingError | null {
    if (access === "open") return null;
    if (authorization === undefined || authorization === "") {
      if (this.#anonymous.has(access)) return null;
      return unauthenticated(`this call needs a token with the '${access}' scope: send 'authorization: Bearer <token>'`);
    }
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (m === null) return unauthenticated("the authorization value must be 'Bearer <token>'");
    const scopes = this.#scopesOf(m[1]!);
    if (scopes === null) return unauthenticated("the token is not valid");
    if (!scopes.has(access)) {
      return new ServingError(Status.PERMISSION_DENIED, "PERMISSION_DENIED", `this token lacks the '${access}' scope this call needs`);
    }
    return null;
  }

  #scopesOf(token: string): ReadonlySet<Scope> | null {
    const hash = tokenHash(token);
    let found: ReadonlySet<Scope> | null = null;
    // Every entry is compared, so the time taken says nothing about which matched.
    for (const entry of this.#tokens) if (timingSafeEqual(entry.hash, hash) && found === null) found = entry.scopes;
    return found;
  }
}

function unauthenticated(message: string): ServingError {
  return new ServingError(Status.UNAUTHENTICATED, "UNAUTHENTICATED", message, { headers: { ...BEARER_CHALLENGE } });
}
