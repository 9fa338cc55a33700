/**
 * Raw payload frames → the typed inputs a model module receives. Frames are
 * the item's elements as little-endian bytes, exactly as the gateway got them
 * (no re-encoding on the wire), so decoding is a view or, when the frame is
 * misaligned, one copy.
 */
import { endianness } from "node:os";
import type { InputType } from "../core/input-types.js";

/** What a model receives for one item, by input type (design.md § Commands). */
export type ModelInput = Float64Array | Float32Array | Int32Array | Buffer | string;

/** Bytes per element of the numeric input types. */
const ELEMENT_BYTES = { doubles: 8, floats: 4, integers: 4 } as const;

/** A decoded input, or why the frame is not one (a per-item INVALID_ARGUMENT). */
export type DecodedInput = { ok: true; value: ModelInput } | { ok: false; error: string };

// Typed arrays use the host's byte order; on a big-endian host the views would
// read the wire's little-endian bytes backwards, so elements are read one by one.
const HOST_IS_LITTLE_ENDIAN = endianness() === "LE";

// `fatal` makes invalid UTF-8 an item error instead of silent U+FFFD replacement,
// which would hand the model text the caller never sent.
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes one payload frame as `type`. Never throws: a frame whose length is
 * not a multiple of the element size, or strings that are not UTF-8, give
 * `{ok: false}` with a message naming the problem (an INVALID_ARGUMENT for
 * that item only).
 */
export function decodeInput(type: InputType, frame: Buffer): DecodedInput {
  switch (type) {
    case "bytes":
      return { ok: true, value: frame };
    case "strings":
      try {
        return { ok: true, value: UTF8.decode(frame) };
      } catch {
        return { ok: false, error: "string input is not valid UTF-8" };
      }
    case "doubles":
      return numeric(frame, ELEMENT_BYTES.doubles, "doubles", (n) => new Float64Array(n), (b, o, n) => new Float64Array(b, o, n), (v, i) => v.getFloat64(i, true));
    case "floats":
      return numeric(frame, ELEMENT_BYTES.floats, "floats", (n) => new Float32Array(n), (b, o, n) => new Float32Array(b, o, n), (v, i) => v.getFloat32(i, true));
    case "integers":
      return numeric(frame, ELEMENT_BYTES.integers, "integers", (n) => new Int32Array(n), (b, o, n) => new Int32Array(b, o, n), (v, i) => v.getInt32(i, true));
  }
}

type Numeric = Float64Array | Float32Array | Int32Array;

function numeric<T extends Numeric>(
  frame: Buffer,
  size: number,
  name: string,
  alloc: (length: number) => T,
  view: (buffer: ArrayBufferLike, byteOffset: number, length: number) => T,
  read: (view: DataView, offset: number) => number,
): DecodedInput {
  if (frame.length % size !== 0) {
    return { ok: false, error: `${name} input is ${frame.length} bytes, not a multiple of ${size} bytes per element` };
  }
  const length = frame.length / size;
  if (HOST_IS_LITTLE_ENDIAN && frame.byteOffset % size === 0) {
    // Zero-copy: the model sees the received bytes themselves (design.md: payloads are never re-encoded).
    return { ok: true, value: view(frame.buffer, frame.byteOffset, length) };
  }
  const out = alloc(length);
  if (HOST_IS_LITTLE_ENDIAN) {
    // zeromq frames may start at any byte offset, where a typed-array view
    // throws; one copy into a fresh, aligned array fixes that.
    new Uint8Array(out.buffer).set(frame);
    return { ok: true, value: out };
  }
  const data = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  for (let i = 0; i < length; i++) out[i] = read(data, i * size);
  return { ok: true, value: out };
}
