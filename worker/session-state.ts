/**
 * One gateway session's life (worker/gateway-session.ts) as a state
 * machine, in the manner of grpc-js's connectivity states: each state
 * carries only what exists in it (a connection while registering or
 * serving, a replica id only while serving, a backoff timer only while
 * reconnecting), and {@link SESSION_TRANSITIONS} lists the only moves a
 * session may make. A worker has one session per gateway address.
 *
 * What makes each move:
 * - registering → serving: WorkerRegistered;
 * - serving → registering: ReregisterWorker (the gateway forgot us);
 * - registering | serving → reconnecting: the gateway went silent;
 * - reconnecting → registering: the backoff is over, a new session opens;
 * - registering | serving | reconnecting → draining: the worker drains;
 * - any but stopped → stopped: the worker closes, the drain ends, or the
 *   gateway's address is gone (or refused the registration).
 *
 * Connecting and registering are one state: zeromq reports no failure to
 * connect, only silence, and the RegisterWorker is queued on the socket as
 * it opens, so the worker cannot tell the two apart.
 */
import type { GatewayConnection } from "./gateway-connection.js";

/** Where a session is in its life, with what exists only there. */
export type SessionState =
  /** A session is open and RegisterWorker is (re)sent until the gateway answers. */
  | { readonly phase: "registering"; readonly conn: GatewayConnection }
  /** Registered as `replicaId` on this session: beats, takes batches. */
  | { readonly phase: "serving"; readonly conn: GatewayConnection; readonly replicaId: number }
  /** The last session was abandoned (the gateway went silent); a new one opens when `timer` fires. */
  | { readonly phase: "reconnecting"; readonly timer: NodeJS.Timeout }
  /**
   * Refusing new batches and finishing the running ones. `conn` is null if
   * the drain began between sessions; `replicaId` is the id the gateway
   * still knows us by, null unless the drain began while serving.
   */
  | { readonly phase: "draining"; readonly conn: GatewayConnection | null; readonly replicaId: number | null }
  /** Closed for good: no session, no timers. */
  | { readonly phase: "stopped" };

/** The name of a {@link SessionState}. */
export type SessionPhase = SessionState["phase"];

/**
 * Every legal move, by the state it leaves. `serving → serving` is the one
 * self-move: a registration retried before the first answer arrived can be
 * answered again with another replica id, and the latest answer is the one
 * the gateway keeps. Nothing leaves `stopped`, and a drain only ends.
 */
export const SESSION_TRANSITIONS: Readonly<Record<SessionPhase, readonly SessionPhase[]>> = {
  registering: ["serving", "reconnecting", "draining", "stopped"],
  serving: ["serving", "registering", "reconnecting", "draining", "stopped"],
  reconnecting: ["registering", "draining", "stopped"],
  draining: ["stopped"],
  stopped: [],
};

/** True when {@link SESSION_TRANSITIONS} allows moving from `from` to `to`. */
export function canTransition(from: SessionPhase, to: SessionPhase): boolean {
  return SESSION_TRANSITIONS[from].includes(to);
}

/**
 * A move the table does not allow. Every caller checks the phase it expects
 * before moving, so this is a bug in the worker, never a condition of the
 * network: it is thrown, not logged (see GatewaySession's #transition).
 */
export class IllegalTransitionError extends Error {
  readonly from: SessionPhase;
  readonly to: SessionPhase;

  constructor(from: SessionPhase, to: SessionPhase) {
    super(`illegal session state transition ${from} -> ${to}`);
    this.name = "IllegalTransitionError";
    this.from = from;
    this.to = to;
  }
}

/** Throws an {@link IllegalTransitionError} unless `from → to` is in the table. */
export function checkTransition(from: SessionPhase, to: SessionPhase): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(from, to);
}
