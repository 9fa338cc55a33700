/**
 * Protobuf JSON straight to and from the ts-proto objects the handlers
 * speak, compiled once per message from its descriptor. It covers the plain
 * shapes (scalars, open enums, nested messages, repeated fields) and only
 * their canonical JSON spellings; for anything else it answers NOT_DIRECT
 * and the caller takes the generic path (@bufbuild/protobuf's fromJson and
 * toJson through the binary form), which stays the one home of the protobuf
 * JSON rules and of every error message. So this module never rejects
 * input: it either produces exactly what the generic path would, or
 * declines. A message it cannot cover at all (maps, oneofs, explicit
 * presence, well-known types, closed enums) compiles to null.
 *
 * @internal
 */
import { ScalarType, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";

/** The answer for a value outside the direct codec's shapes: use the generic path. */
export const NOT_DIRECT: unique symbol = Symbol("not direct");
export type NotDirect = typeof NOT_DIRECT;

/** A request decoder: JSON value (as JSON.parse gives it) to the handler's request object. */
export type DirectDecoder = (json: unknown) => object | NotDirect;
/** A response encoder: the handler's response object to JSON text (all implicit fields emitted). */
export type DirectEncoder = (message: unknown) => string | NotDirect;

/**
 * Deeper nesting is left to the generic path, which enforces its own
 * recursion limits (100 in fromJson and in ts-proto's decode).
 */
const MAX_DEPTH = 32;
const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const UINT32_MAX = 0xffffffff;
/** Standard base64 with padding, the form protobuf JSON writes; other spellings go the generic way. */
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

type ValueDecoder = (json: unknown, depth: number) => unknown;
type ValueEncoder = (value: unknown, depth: number) => string | NotDirect;

interface FieldCodec {
  /** The ts-proto property name. */
  readonly prop: string;
  /** `"jsonName":`, ready to write. */
  readonly keyText: string;
  readonly bit: number;
  /** Unset message fields are omitted (explicit presence); every other field is always written. */
  readonly omitUndefined: boolean;
  readonly zero: () => unknown;
  readonly decode: ValueDecoder;
  readonly encode: ValueEncoder;
}

interface MessageCodec {
  /** Fields in declaration order (ts-proto's property order). */
  fields: FieldCodec[];
  /** Fields by field number (protobuf JSON's output order). */
  sorted: FieldCodec[];
  byKey: Map<string, FieldCodec>;
}

/** Compiles the decoder of `desc`'s JSON into ts-proto objects, or null when `desc` is not covered. */
export function compileDirectDecoder(desc: DescMessage): DirectDecoder | null {
  const codec = compileMessage(desc, new Map());
  if (codec === null) return null;
  return (json) => decodeMessage(codec, json, 0);
}

/**
 * Compiles the encoder of ts-proto objects of `desc` into protobuf JSON
 * text, or null when `desc` is not covered. With `pick`, only that field's
 * value is written (the rule's response_body; `null` when unset), though
 * every field is still checked.
 */
export function compileDirectEncoder(desc: DescMessage, pick: DescField | null): DirectEncoder | null {
  const codec = compileMessage(desc, new Map());
  if (codec === null) return null;
  if (pick === null) return (message) => encodeMessage(codec, message, 0);
  const picked = codec.fields[desc.fields.indexOf(pick)];
  if (picked === undefined) return null;
  return (message) => encodeMessage(codec, message, 0, picked);
}

function compileMessage(desc: DescMessage, compiling: Map<DescMessage, MessageCodec | null>): MessageCodec | null {
  const known = compiling.get(desc);
  if (known !== undefined) return known;
  // Well-known types have their own JSON forms; fields beyond 31 do not fit the seen-bitmask.
  if (desc.typeName.startsWith("google.protobuf.") || desc.fields.length > 31) return null;
  // Registered before its fields, so a recursive message refers to itself.
  const codec: MessageCodec = { fields: [], sorted: [], byKey: new Map() };
  compiling.set(desc, codec);
  for (let i = 0; i < desc.fields.length; i++) {
    const field = compileField(desc.fields[i]!, 1 << i, compiling);
    if (field === null) {
      compiling.set(desc, null);
      return null;
    }
    codec.fields.push(field);
    codec.byKey.set(desc.fields[i]!.name, field).set(desc.fields[i]!.jsonName, field);
  }
  const order = desc.fields.map((f, i) => ({ number: f.number, i }));
  codec.sorted = order.sort((a, b) => a.number - b.number).map(({ i }) => codec.fields[i]!);
  return codec;
}

function compileField(field: DescField, bit: number, compiling: Map<DescMessage, MessageCodec | null>): FieldCodec | null {
  // A "__proto__" property would set the prototype of the objects built here.
  if (field.oneof !== undefined || field.jsonName === "__proto__") return null;
  const base = { prop: field.jsonName, keyText: `${JSON.stringify(field.jsonName)}:`, bit };
  switch (field.fieldKind) {
    case "scalar": {
      if (field.presence !== IMPLICIT) return null;
      const value = scalarCodec(field.scalar);
      return { ...base, omitUndefined: false, ...value };
    }
    case "enum": {
      if (field.presence !== IMPLICIT) return null;
      const value = enumCodec(field.enum);
      return value === null ? null : { ...base, omitUndefined: false, ...value };
    }
    case "message": {
      if (field.delimitedEncoding) return null;
      const child = compileMessage(field.message, compiling);
      if (child === null) return null;
      return {
        ...base,
        omitUndefined: true,
        zero: () => undefined,
        decode: (json, depth) => decodeMessage(child, json, depth + 1),
        encode: (value, depth) => encodeMessage(child, value, depth + 1),
      };
    }
    case "list": {
      let item: Pick<FieldCodec, "decode" | "encode"> | null;
      if (field.listKind === "scalar") item = scalarCodec(field.scalar);
      else if (field.listKind === "enum") item = enumCodec(field.enum);
      else if (field.delimitedEncoding) item = null;
      else {
        const child = compileMessage(field.message, compiling);
        item = child === null ? null : {
          decode: (json, depth) => decodeMessage(child, json, depth + 1),
          encode: (value, depth) => encodeMessage(child, value, depth + 1),
        };
      }
      return item === null ? null : { ...base, omitUndefined: false, zero: () => [], ...listCodec(item) };
    }
    default:
      return null;
  }
}

/** google.protobuf.FeatureSet.FieldPresence.IMPLICIT (proto3 fields without `optional`). */
const IMPLICIT = 2;

function decodeMessage(codec: MessageCodec, json: unknown, depth: number): object | NotDirect {
  if (typeof json !== "object" || json === null || Array.isArray(json) || depth > MAX_DEPTH) return NOT_DIRECT;
  const out: Record<string, unknown> = {};
  for (const f of codec.fields) out[f.prop] = f.zero();
  const obj = json as Record<string, unknown>;
  const keys = Object.keys(obj);
  let seen = 0;
  for (let i = 0; i < keys.length; i++) {
    const f = codec.byKey.get(keys[i]!);
    // Unknown keys and a field given under both names are errors the generic path words.
    if (f === undefined || (seen & f.bit) !== 0) return NOT_DIRECT;
    seen |= f.bit;
    const value = obj[keys[i]!];
    // null is the field's default, which `out` already holds.
    if (value === null) continue;
    const decoded = f.decode(value, depth);
    if (decoded === NOT_DIRECT) return NOT_DIRECT;
    out[f.prop] = decoded;
  }
  return out;
}

function encodeMessage(codec: MessageCodec, message: unknown, depth: number, pick?: FieldCodec): string | NotDirect {
  if (typeof message !== "object" || message === null || Array.isArray(message) || depth > MAX_DEPTH) return NOT_DIRECT;
  const obj = message as Record<string, unknown>;
  let text = "{";
  let picked = "null";
  for (const f of codec.sorted) {
    const value = obj[f.prop];
    if (value === undefined && f.omitUndefined) continue;
    const encoded = f.encode(value, depth);
    if (encoded === NOT_DIRECT) return NOT_DIRECT;
    if (f === pick) picked = encoded;
    text += text.length === 1 ? f.keyText + encoded : "," + f.keyText + encoded;
  }
  return pick === undefined ? text + "}" : picked;
}

function listCodec(item: Pick<FieldCodec, "decode" | "encode">): Pick<FieldCodec, "decode" | "encode"> {
  return {
    decode(json, depth) {
      if (!Array.isArray(json)) return NOT_DIRECT;
      const out: unknown[] = new Array(json.length);
      for (let i = 0; i < json.length; i++) {
        const v: unknown = json[i];
        const decoded = v === null ? NOT_DIRECT : item.decode(v, depth);
        if (decoded === NOT_DIRECT) return NOT_DIRECT;
        out[i] = decoded;
      }
      return out;
    },
    encode(value, depth) {
      if (!Array.isArray(value)) return NOT_DIRECT;
      let text = "[";
      for (let i = 0; i < value.length; i++) {
        const encoded = item.encode(value[i], depth);
        if (encoded === NOT_DIRECT) return NOT_DIRECT;
        text += i === 0 ? encoded : "," + encoded;
      }
      return text + "]";
    },
  };
}

function enumCodec(desc: DescEnum): Pick<FieldCodec, "zero" | "decode" | "encode"> | null {
  // Closed enums accept only their values; aliases make the name of a number ambiguous.
  if (!desc.open || new Set(desc.values.map((v) => v.number)).size !== desc.values.length) return null;
  const byName = new Map<string, number>();
  for (const v of desc.values) byName.set(v.jsonName, v.number);
  for (const v of desc.values) byName.set(v.name, v.number);
  const nameText = new Map<number, string>(desc.values.map((v) => [v.number, JSON.stringify(v.jsonName)]));
  const zero = desc.values[0]!.number;
  return {
    zero: () => zero,
    decode(json) {
      if (typeof json === "string") return byName.get(json) ?? NOT_DIRECT;
      return isInt32(json) ? json | 0 : NOT_DIRECT;
    },
    encode(value) {
      if (!isInt32(value)) return NOT_DIRECT;
      return nameText.get(value) ?? String(value);
    },
  };
}

function scalarCodec(scalar: ScalarType): Pick<FieldCodec, "zero" | "decode" | "encode"> {
  switch (scalar) {
    case ScalarType.DOUBLE:
      return {
        zero: () => 0,
        decode: (json) => (typeof json === "number" && Number.isFinite(json) ? json : NOT_DIRECT),
        encode: (value) => (typeof value === "number" ? floatText(value) : NOT_DIRECT),
      };
    case ScalarType.FLOAT:
      return {
        zero: () => 0,
        decode(json) {
          if (typeof json !== "number") return NOT_DIRECT;
          const f = Math.fround(json);
          return Number.isFinite(f) ? f : NOT_DIRECT;
        },
        encode(value) {
          if (typeof value !== "number") return NOT_DIRECT;
          const f = Math.fround(value);
          // A finite value beyond float32's range is refused by the binary writer.
          return Number.isFinite(value) && !Number.isFinite(f) ? NOT_DIRECT : floatText(f);
        },
      };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return {
        zero: () => 0,
        decode: (json) => (isInt32(json) ? json | 0 : NOT_DIRECT),
        encode: (value) => (isInt32(value) ? String(value | 0) : NOT_DIRECT),
      };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return {
        zero: () => 0,
        decode: (json) => (isUint32(json) ? json >>> 0 : NOT_DIRECT),
        encode: (value) => (isUint32(value) ? String(value >>> 0) : NOT_DIRECT),
      };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      // ts-proto holds 64-bit integers as numbers here; beyond 2^53 its decode throws, so those go the generic way.
      return {
        zero: () => 0,
        decode: (json) => (Number.isSafeInteger(json) ? (json as number) + 0 : NOT_DIRECT),
        encode: (value) => (Number.isSafeInteger(value) ? `"${(value as number) + 0}"` : NOT_DIRECT),
      };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return {
        zero: () => 0,
        decode: (json) => (Number.isSafeInteger(json) && (json as number) >= 0 ? (json as number) + 0 : NOT_DIRECT),
        encode: (value) => (Number.isSafeInteger(value) && (value as number) >= 0 ? `"${(value as number) + 0}"` : NOT_DIRECT),
      };
    case ScalarType.BOOL:
      return {
        zero: () => false,
        decode: (json) => (typeof json === "boolean" ? json : NOT_DIRECT),
        encode: (value) => (value === true ? "true" : value === false ? "false" : NOT_DIRECT),
      };
    case ScalarType.STRING:
      return {
        zero: () => "",
        // A lone surrogate is not UTF-8: fromJson refuses it, so the generic path words that.
        decode: (json) => (typeof json === "string" && isWellFormed(json) ? json : NOT_DIRECT),
        // The binary form would carry a lone surrogate as U+FFFD.
        encode: (value) => (typeof value === "string" ? JSON.stringify(isWellFormed(value) ? value : toWellFormed(value)) : NOT_DIRECT),
      };
    case ScalarType.BYTES:
      return {
        zero: () => Buffer.alloc(0),
        decode(json) {
          if (typeof json !== "string" || !CANONICAL_BASE64.test(json)) return NOT_DIRECT;
          return Buffer.from(json, "base64");
        },
        encode(value) {
          if (!(value instanceof Uint8Array)) return NOT_DIRECT;
          return `"${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64")}"`;
        },
      };
  }
}

/** Protobuf JSON's number form: NaN and the infinities as strings, -0 as 0. */
function floatText(value: number): string {
  if (Number.isFinite(value)) return String(value);
  return Number.isNaN(value) ? '"NaN"' : value > 0 ? '"Infinity"' : '"-Infinity"';
}

function isInt32(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX;
}

function isUint32(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= UINT32_MAX;
}

/** String.prototype.isWellFormed / toWellFormed (ES2024, in Node 20; the project's lib is ES2023). */
type Es2024String = { isWellFormed(): boolean; toWellFormed(): string };
function isWellFormed(s: string): boolean {
  return (s as unknown as Es2024String).isWellFormed();
}
function toWellFormed(s: string): string {
  return (s as unknown as Es2024String).toWellFormed();
}
