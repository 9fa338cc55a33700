import { status as Status } from "@grpc/grpc-js";
import type { CallContext } from "../call-context.js";
import { descriptorSet } from "../descriptor-set.js";
import { ServingError, invalidArgument } from "../errors.js";
import { httpCallContext } from "../http-call-context.js";
import { DEFAULT_MAX_BODY_BYTES, readBody, sendError, sendJson, type HttpMatch, type HttpRouteTable } from "../servers/http-server.js";
import { responseClosed, type HttpRequest, type HttpResponse } from "../servers/http-exchange.js";
import type { UnaryServiceBinding } from "../service-binding.js";
import { untilAborted } from "../until-aborted.js";
import { bindJson } from "./binder.js";
import { loadDescriptorRegistry } from "./http-rule.js";
import { matchPathTemplate } from "./path-template.js";
import { compileRoutes, type Route } from "./route.js";
import { decodedPathText, type RequestTarget } from "../servers/request-target.js";

/** Options of {@link createTranscoder}. */
export interface TranscoderOptions {
  /** Serialized google.protobuf.FileDescriptorSet with the services and google/api/annotations.proto; defaults to {@link descriptorSet}. */
  readonly descriptors?: Uint8Array;
  /** Largest request body read, in bytes; larger ones get 413. Defaults to {@link DEFAULT_MAX_BODY_BYTES}. */
  readonly maxBodyBytes?: number;
  /**
   * Called with the original thrown value of every call that ends INTERNAL
   * (the caller only sees "internal error"), and the route's description.
   */
  readonly onError?: ErrorHook;
  /**
   * A request field (proto name, top level) that names what a call is for,
   * e.g. a gateway's "app": a route whose path captures it gives the
   * decoded value as its match's subject, before the body is read.
   */
  readonly subjectField?: string;
}

/** Receives the original thrown value of a call that ended INTERNAL, and the route's description. */
export type ErrorHook = (err: unknown, route: string) => void;

/**
 * One HTTP/JSON front for any number of UnaryServiceBindings, driven by
 * their methods' google.api.http annotations (grpc-gateway's mapping, see
 * googleapis google/api/http.proto). Routes are built here, once; this
 * throws if a binding, rule or field named by a rule is unknown.
 *
 * Requests are bound to the request message (core/transcoding/binder),
 * run through the binding's own codecs and handler, and answered with the
 * response as protobuf JSON (200, application/json); failures are
 * `google.rpc.Status` JSON with the canonical HTTP status (core/status).
 * When several rules match the same method and path, the one declared last
 * wins, as in grpc-gateway's ServeMux.
 */
export function createTranscoder(bindings: readonly UnaryServiceBinding[], options: TranscoderOptions = {}): HttpRouteTable {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0) {
    throw new RangeError(`transcoding: maxBodyBytes must be a positive integer, got ${maxBodyBytes}`);
  }
  const registry = loadDescriptorRegistry(options.descriptors ?? descriptorSet());
  return new Transcoder(compileRoutes(bindings, registry), maxBodyBytes, options.onError ?? null, options.subjectField ?? null);
}

class Transcoder implements HttpRouteTable {
  /** Reversed, so the first match is the rule declared last. */
  readonly #routes: readonly Route[];
  readonly #maxBodyBytes: number;
  readonly #onError: ErrorHook | null;
  /** Per route, the index of the path variable that is the subject field; -1 when none is. */
  readonly #subjectIndex: ReadonlyMap<Route, number>;

  constructor(routes: readonly Route[], maxBodyBytes: number, onError: ErrorHook | null, subjectField: string | null) {
    this.#routes = [...routes].reverse();
    this.#maxBodyBytes = maxBodyBytes;
    this.#onError = onError;
    this.#subjectIndex = new Map(
      routes.map((route) => [route, subjectField === null ? -1 : route.plan.pathFields.findIndex((fields, i) => fields.length === 1 && fields[0]!.name === subjectField && !route.plan.pathMultiSegment[i])]),
    );
  }

  match(method: string, url: RequestTarget): HttpMatch | null {
    for (const route of this.#routes) {
      if (route.httpMethod !== method) continue;
      const captures = matchPathTemplate(route.template, url.pathname);
      if (captures === null) continue;
      // The captures travel with the match, so serving does not match the path again.
      const maxBodyBytes = this.#maxBodyBytes;
      const onError = this.#onError;
      const subjectAt = this.#subjectIndex.get(route) ?? -1;
      // Undecodable, it names nothing here; binding then refuses it.
      const subject = subjectAt < 0 ? undefined : (decodedPathText(captures[subjectAt]!) ?? undefined);
      return {
        kind: "handler",
        access: route.access,
        subject,
        handle(req: HttpRequest, res: HttpResponse, url: RequestTarget): Promise<void> {
          return serve(route, captures, req, res, url, maxBodyBytes, onError);
        },
      };
    }
    let allow: string[] | null = null;
    for (const route of this.#routes) {
      if (matchPathTemplate(route.template, url.pathname) === null) continue;
      allow ??= [];
      if (!allow.includes(route.httpMethod)) allow.push(route.httpMethod);
    }
    return allow === null ? null : { kind: "method-not-allowed", allow };
  }
}

/** Serves one matched request; never rejects (every failure becomes an error response). */
async function serve(
  route: Route,
  captures: readonly string[],
  req: HttpRequest,
  res: HttpResponse,
  url: RequestTarget,
  maxBodyBytes: number,
  onError: ErrorHook | null,
): Promise<void> {
  const scope = httpCallContext(req, res, "http", sendError);
  if (scope === null) return;
  const { ctx, dispose } = scope;
  try {
    const json = await untilAborted(invoke(route, captures, req, url, ctx, maxBodyBytes), ctx);
    if (!responseClosed(res)) sendJson(res, 200, json);
  } catch (err) {
    fail(route, res, err, onError);
  } finally {
    dispose();
  }
}

async function invoke(route: Route, captures: readonly string[], req: HttpRequest, url: RequestTarget, ctx: CallContext, maxBodyBytes: number): Promise<string> {
  let body: Buffer | null = null;
  if (route.plan.body.kind === "none") req.resume();
  else body = await readBody(req, maxBodyBytes);
  const bound = bindJson(route.plan, captures, url.searchParams, body);
  if (!bound.ok) throw invalidArgument("INVALID_REQUEST", bound.error);
  const read = route.codec.readRequest(bound.json);
  if (route.handler === null) {
    // Same answer grpc-js gives for a method with no implementation.
    throw new ServingError(Status.UNIMPLEMENTED, "INTERNAL", `method ${route.grpcPath} is not implemented`);
  }
  const response: unknown = await route.handler(route.codec.handlerRequest(read), ctx);
  return route.codec.writeResponse(response);
}

function fail(route: Route, res: HttpResponse, err: unknown, onError: ErrorHook | null): void {
  let e = ServingError.from(err);
  // A thrown "OK" would be sent as a 200 error body; treat it as the bug it is.
  if (e.code === Status.OK) e = new ServingError(Status.INTERNAL, "INTERNAL", "internal error", { cause: err });
  if (e.code === Status.INTERNAL && onError !== null) {
    try {
      onError(err, route.description);
    } catch {
      // A failing error hook must not stop the error response.
    }
  }
  // The client is gone (CANCELLED): nobody to answer.
  if (responseClosed(res)) return;
  sendError(res, e);
}
