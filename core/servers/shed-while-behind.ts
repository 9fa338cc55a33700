/**
 * The refusal a server sends at its door while its event loop is behind
 * (core/loop-pressure.ts): one home for the rule, used by the HTTP server
 * for routes needing the predict scope (after authorization, before the
 * body is read) and by the gRPC server for unary methods needing it
 * (once grpc-js has decoded the message, before the call's context is
 * built). Streaming methods (PredictStream) are not checked: a stream's
 * queries share one call and its flow control.
 *
 * A call's subject (a gateway's app) is passed to the check when the call
 * names it that early: in an HTTP route's path, or in a gRPC request's
 * field. The server decides with it how much lateness that call can bear.
 */
import { status as Status } from "@grpc/grpc-js";
import type { Access } from "../auth/scopes.js";
import { RETRY_AFTER_HEADERS, RETRY_AFTER_SECONDS, ServingError } from "../errors.js";

/** A check at a server's door: the error to answer with, or null to let the call in. `subject` is undefined when the call does not name one. */
export type DoorCheck = (subject: string | undefined) => ServingError | null;

/** A gRPC server's door: its check, and the subject a decoded request names (undefined when none). */
export interface GrpcDoor {
  readonly check: DoorCheck;
  subjectOf(request: unknown): string | undefined;
}

/** Whether calls needing `access` pass the door: those asking for predictions, the load it sheds. */
export function checkedAtDoor(access: Access): boolean {
  return access === "predict";
}

/**
 * Refuses a call while `behind(subject)` says the loop is too far behind
 * for it, with RESOURCE_EXHAUSTED (HTTP 429) and Retry-After, the answer
 * clients and balancers already take as "retry later or elsewhere";
 * `onRefuse` counts it.
 */
export function shedWhileBehind(behind: (subject: string | undefined) => boolean, onRefuse: (subject: string | undefined) => void): DoorCheck {
  // One error for every refusal: it is immutable and carries no stack (core/errors.ts).
  const refusal = new ServingError(
    Status.RESOURCE_EXHAUSTED,
    "GATEWAY_BEHIND",
    `the gateway's event loop is behind on its work, so this call was refused unread; retry in ${RETRY_AFTER_SECONDS} s, or on another gateway`,
    { headers: RETRY_AFTER_HEADERS },
  );
  return (subject) => {
    if (!behind(subject)) return null;
    onRefuse(subject);
    return refusal;
  };
}
