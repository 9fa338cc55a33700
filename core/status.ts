import { status as Status } from "@grpc/grpc-js";
import { ServingError } from "./errors.js";

/**
 * gRPC status → HTTP status, the canonical table of google/rpc/code.proto
 * as grpc-gateway applies it (runtime.HTTPStatusFromCode). FAILED_PRECONDITION
 * is 400, not 412, exactly as there.
 */
const HTTP_FROM_GRPC: Readonly<Record<number, number>> = {
  [Status.OK]: 200,
  [Status.CANCELLED]: 499,
  [Status.UNKNOWN]: 500,
  [Status.INVALID_ARGUMENT]: 400,
  [Status.DEADLINE_EXCEEDED]: 504,
  [Status.NOT_FOUND]: 404,
  [Status.ALREADY_EXISTS]: 409,
  [Status.PERMISSION_DENIED]: 403,
  [Status.RESOURCE_EXHAUSTED]: 429,
  [Status.FAILED_PRECONDITION]: 400,
  [Status.ABORTED]: 409,
  [Status.OUT_OF_RANGE]: 400,
  [Status.UNIMPLEMENTED]: 501,
  [Status.INTERNAL]: 500,
  [Status.UNAVAILABLE]: 503,
  [Status.DATA_LOSS]: 500,
  [Status.UNAUTHENTICATED]: 401,
};

/** HTTP status for a gRPC status code; unknown codes are 500. */
function httpStatusFromGrpc(code: number): number {
  return HTTP_FROM_GRPC[code] ?? 500;
}

/** `google.rpc.Status` in its JSON form, as grpc-gateway writes error bodies. */
export interface RpcStatusJson {
  code: number;
  message: string;
  details: unknown[];
}

/**
 * The HTTP rendering of an error: status, `google.rpc.Status` JSON body and
 * any extra headers. Routing errors keep their own HTTP status (404, 405,
 * 413), as do the request guards' refusals (415, 421), while the body
 * carries the matching gRPC code.
 */
export function httpErrorOf(err: unknown): { status: number; body: RpcStatusJson; headers: Record<string, string> } {
  const e = ServingError.from(err);
  const status =
    e.reason === "ROUTE_NOT_FOUND" ? 404
    : e.reason === "METHOD_NOT_ALLOWED" ? 405
    : e.reason === "BODY_TOO_LARGE" ? 413
    : e.reason === "UNSUPPORTED_MEDIA_TYPE" ? 415
    : e.reason === "HOST_NOT_ALLOWED" ? 421
    : httpStatusFromGrpc(e.code);
  return { status, body: { code: e.code, message: e.message, details: [] }, headers: { ...e.headers } };
}
