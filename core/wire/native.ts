/**
 * The native worker dialect on the gateway's ZeroMQ ROUTER (see
 * proto/clipper/v1/heartbeat.proto): after the empty delimiter comes the
 * marker frame, one protobuf message, then raw payload frames (one per batch
 * item). A Clipper v3 peer never sends the marker, since its first frame
 * after the delimiter is a 4-byte message type.
 */
import { GatewayMessage, WorkerMessage } from "../../gen/clipper/v1/heartbeat.js";
import type { Decoded } from "../decoded.js";

/** Marks a native message; 8 bytes so it can never be mistaken for a v3 u32 type. */
const NATIVE_MARKER = Buffer.from("CLPRTS01", "latin1");

/** Largest protobuf message frame accepted, in bytes (the payloads travel beside it). */
const MAX_MESSAGE_BYTES = 1 << 20;

const EMPTY = Buffer.alloc(0);

/** True when frames (after the identity, if any) carry the native marker. */
export function isNative(frames: readonly Buffer[]): boolean {
  return frames.length >= 2 && frames[0]!.length === 0 && frames[1]!.equals(NATIVE_MARKER);
}

/** Frames of a worker → gateway message, as the DEALER sends them. */
export function encodeWorkerMessage(message: WorkerMessage, payloads: readonly Buffer[] = []): Buffer[] {
  return [EMPTY, NATIVE_MARKER, Buffer.from(WorkerMessage.encode(message).finish()), ...payloads];
}

/** Frames of a gateway → worker message (the ROUTER prepends the identity). */
export function encodeGatewayMessage(message: GatewayMessage, payloads: readonly Buffer[] = []): Buffer[] {
  return [EMPTY, NATIVE_MARKER, Buffer.from(GatewayMessage.encode(message).finish()), ...payloads];
}

/** Decodes worker → gateway frames (after the identity). */
export function decodeWorkerMessage(frames: readonly Buffer[]): Decoded<{ message: WorkerMessage; payloads: Buffer[] }> {
  return decode(frames, WorkerMessage.decode);
}

/** Decodes gateway → worker frames (as the DEALER receives them). */
export function decodeGatewayMessage(frames: readonly Buffer[]): Decoded<{ message: GatewayMessage; payloads: Buffer[] }> {
  return decode(frames, GatewayMessage.decode);
}

function decode<M extends { kind?: unknown }>(frames: readonly Buffer[], parse: (b: Uint8Array) => M): Decoded<{ message: M; payloads: Buffer[] }> {
  if (!isNative(frames) || frames.length < 3) return { ok: false, error: "not a native message: expected delimiter, marker and message frames" };
  const body = frames[2]!;
  if (body.length > MAX_MESSAGE_BYTES) return { ok: false, error: `native message frame is ${body.length} bytes, over ${MAX_MESSAGE_BYTES}` };
  let message: M;
  try {
    message = parse(body);
  } catch (err) {
    return { ok: false, error: `native message frame is not valid protobuf: ${(err as Error).message}` };
  }
  if (message.kind === undefined) return { ok: false, error: "native message has no kind set" };
  return { ok: true, value: { message, payloads: frames.slice(3) as Buffer[] } };
}
