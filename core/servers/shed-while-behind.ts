/**
 * The refusal a server sends at its door while its event loop is behind
 * (core/loop-pressure.ts): one home for the rule, used by the HTTP server
 * for routes needing the predict scope (after authorization, before the
 * body is read) and by the gRPC server for unary methods needing it
 * (before the call's context is built). Streaming methods (PredictStream)
 * are not checked: a stream's queries share one call and its flow control.
 */
import { status as Status } from "@grpc/grpc-js";
import type { Access } from "../auth/scopes.js";
import { RETRY_AFTER_HEADERS, RETRY_AFTER_SECONDS, ServingError } from "../errors.js";

/** A check at a server's door: the error to answer with, or null to let the call in. */
export type DoorCheck = () => ServingError | null;

/** Whether calls needing `access` pass the door: those asking for predictions, the load it sheds. */
export function checkedAtDoor(access: Access): boolean {
  return access === "predict";
}

/**
 * Refuses every call while `pressure` says the loop is behind, with
 * RESOURCE_EXHAUSTED (HTTP 429) and Retry-After, the answer clients and
 * balancers already take as "retry later or elsewhere"; `onRefuse` counts it.
 */
export function shedWhileBehind(pressure: { readonly behind: boolean }, onRefuse: () => void): DoorCheck {
  // One error for every refusal: it is immutable and carries no stack (core/errors.ts).
  const refusal = new ServingError(
    Status.RESOURCE_EXHAUSTED,
    "GATEWAY_BEHIND",
    `the gateway's event loop is behind on its work, so this call was refused unread; retry in ${RETRY_AFTER_SECONDS} s, or on another gateway`,
    { headers: RETRY_AFTER_HEADERS },
  );
  return () => {
    if (!pressure.behind) return null;
    onRefuse();
    return refusal;
  };
}
