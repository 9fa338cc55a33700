/**
 * Clipper's model-container RPC, version 3, byte for byte (clipper.md §4).
 * Frames are as the ROUTER sees them after the routing identity. Every
 * integer is little-endian. Decoders take untrusted frames and return an
 * error value instead of throwing.
 */
import type { Decoded } from "../decoded.js";
import { DATA_TYPE_CODE, inputTypeFromCode, type InputType } from "../input-types.js";

export const RPC_VERSION = 3;

/** Message types (u32). */
const MessageType = { NEW_CONTAINER: 0, CONTAINER_CONTENT: 1, HEARTBEAT: 2 } as const;
/** Heartbeat reply types (u32, frontend → container only). */
const HeartbeatType = { KEEP_ALIVE: 0, REQUEST_CONTAINER_METADATA: 1 } as const;
/** Request type of a ContainerContent sent to a container: always predict. */
const REQUEST_TYPE_PREDICT = 0;

/** Longest model name or version accepted at registration, in bytes. */
const MAX_NAME_BYTES = 1024;
/** Most outputs one response may declare; far above any sane batch. */
const MAX_OUTPUTS = 1 << 20;

export type ContainerMessage =
  | { kind: "heartbeat" }
  | { kind: "register"; modelName: string; modelVersion: string; inputType: InputType; rpcVersion: number | null }
  | { kind: "response"; messageId: number; outputs: Buffer[] };

const u32 = (n: number): Buffer => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
};

const u64 = (n: number): Buffer => {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64LE(BigInt(n), 0);
  return b;
};

const EMPTY = Buffer.alloc(0);
const VERSION_FRAME = u32(RPC_VERSION);
const HEARTBEAT_FRAME = u32(MessageType.HEARTBEAT);
const CONTENT_FRAME = u32(MessageType.CONTAINER_CONTENT);
const PREDICT_FRAME = u32(REQUEST_TYPE_PREDICT);

/** Heartbeat reply: type 1 asks an unregistered identity to send NewContainer. */
export function encodeHeartbeatReply(registered: boolean): Buffer[] {
  return [EMPTY, VERSION_FRAME, HEARTBEAT_FRAME, u32(registered ? HeartbeatType.KEEP_ALIVE : HeartbeatType.REQUEST_CONTAINER_METADATA)];
}

/**
 * A predict request: one batch of `inputs` (raw element bytes, §3.3) of one
 * data type. `messageId` (u32) is echoed back in the response.
 */
export function encodePredictRequest(messageId: number, inputType: InputType, inputs: readonly Buffer[]): Buffer[] {
  const header = Buffer.allocUnsafe(8 * (inputs.length + 2));
  header.writeBigUInt64LE(BigInt(DATA_TYPE_CODE[inputType]), 0);
  header.writeBigUInt64LE(BigInt(inputs.length), 8);
  inputs.forEach((input, i) => header.writeBigUInt64LE(BigInt(input.length), 16 + 8 * i));
  return [EMPTY, VERSION_FRAME, CONTENT_FRAME, u32(messageId), PREDICT_FRAME, u64(header.length), header, ...inputs];
}

/**
 * Decodes a container → frontend message (frames after the identity).
 * `rpcVersion` of a registration is null when the frame is missing, which
 * the caller must refuse like Clipper does.
 */
export function decodeContainerMessage(frames: readonly Buffer[]): Decoded<ContainerMessage> {
  if (frames.length < 2 || frames[0]!.length !== 0) return bad("expected an empty delimiter frame then a message type");
  const typeFrame = frames[1]!;
  if (typeFrame.length !== 4) return bad(`message type frame has ${typeFrame.length} bytes, expected 4`);
  const type = typeFrame.readUInt32LE(0);
  switch (type) {
    case MessageType.HEARTBEAT:
      return { ok: true, value: { kind: "heartbeat" } };
    case MessageType.NEW_CONTAINER:
      return decodeRegistration(frames);
    case MessageType.CONTAINER_CONTENT:
      return decodeResponse(frames);
    default:
      return bad(`unknown message type ${type}`);
  }
}

function decodeRegistration(frames: readonly Buffer[]): Decoded<ContainerMessage> {
  if (frames.length < 5) return bad("NewContainer needs model name, version and input type frames");
  const [name, version, typeText] = [frames[2]!, frames[3]!, frames[4]!];
  if (name.length === 0 || name.length > MAX_NAME_BYTES || version.length === 0 || version.length > MAX_NAME_BYTES) {
    return bad("NewContainer model name and version must be 1 to 1024 bytes");
  }
  const code = /^\d$/.test(typeText.toString("latin1")) ? Number(typeText.toString("latin1")) : NaN;
  const inputType = inputTypeFromCode(code);
  if (inputType === null) return bad(`NewContainer input type '${typeText.toString("latin1").slice(0, 16)}' is not 0-4`);
  let rpcVersion: number | null = null;
  if (frames.length >= 6) {
    if (frames[5]!.length !== 4) return bad("NewContainer RPC version frame must be a u32");
    rpcVersion = frames[5]!.readUInt32LE(0);
  }
  return {
    ok: true,
    value: { kind: "register", modelName: name.toString("utf8"), modelVersion: version.toString("utf8"), inputType, rpcVersion },
  };
}

function decodeResponse(frames: readonly Buffer[]): Decoded<ContainerMessage> {
  if (frames.length < 5) return bad("ContainerContent needs message id, header length and header frames");
  const [idFrame, lenFrame, header] = [frames[2]!, frames[3]!, frames[4]!];
  if (idFrame.length !== 4) return bad("ContainerContent message id must be 4 bytes");
  if (lenFrame.length !== 8) return bad("ContainerContent header length must be a u64");
  const declared = Number(lenFrame.readBigUInt64LE(0));
  if (declared !== header.length || header.length < 8 || header.length % 8 !== 0) {
    return bad(`ContainerContent header is ${header.length} bytes but declared ${declared}`);
  }
  const n = Number(header.readBigUInt64LE(0));
  if (n > MAX_OUTPUTS || header.length !== 8 * (n + 1)) return bad(`ContainerContent header declares ${n} outputs but holds ${header.length / 8 - 1} sizes`);
  if (frames.length !== 5 + n) return bad(`ContainerContent declares ${n} outputs but carries ${frames.length - 5} frames`);
  const outputs: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const size = Number(header.readBigUInt64LE(8 * (i + 1)));
    const frame = frames[5 + i]!;
    if (size !== frame.length) return bad(`output ${i} is ${frame.length} bytes but declared ${size}`);
    outputs.push(frame);
  }
  return { ok: true, value: { kind: "response", messageId: idFrame.readUInt32LE(0), outputs } };
}

function bad(error: string): { ok: false; error: string } {
  return { ok: false, error };
}
