/**
 * Converts between a route's bound request JSON and the ts-proto objects its
 * handler speaks. The generic way is @bufbuild/protobuf's fromJson/toJson
 * through the binary form and the binding's own codecs; it is the one home
 * of the protobuf JSON rules and their error messages. The direct way
 * (direct-json.ts) skips the intermediate message and binary form for the
 * shapes it covers and declines the rest, which then go the generic way.
 *
 * @internal
 */
import { ScalarType, fromJson, toBinary, fromBinary, toJson, type DescField, type DescMessage, type JsonObject, type JsonValue, type Message } from "@bufbuild/protobuf";
import type { MethodDefinition } from "@grpc/grpc-js";
import { isDeepStrictEqual } from "node:util";
import { invalidArgument } from "../errors.js";
import type { BindingPlan } from "./binder.js";
import { NOT_DIRECT, compileDirectDecoder, compileDirectEncoder, type DirectDecoder, type DirectEncoder } from "./direct-json.js";

/** A request the generic way parsed; converted for the handler only when it runs. */
class ParsedMessage {
  constructor(readonly message: Message) {}
}

/** What {@link RouteCodec.readRequest} gives and {@link RouteCodec.handlerRequest} takes. */
export type ReadRequest = object;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each method has its own request/response types
type Codec = MethodDefinition<any, any>;

/** One route's request and response conversions. @internal */
export class RouteCodec {
  readonly #plan: BindingPlan;
  readonly #codec: Codec;
  readonly #decode: DirectDecoder | null;
  readonly #encode: DirectEncoder | null;

  /**
   * Compiles the direct conversions of the route's messages, each enabled
   * only when it gives the generic result on a probe that sets every field.
   */
  constructor(plan: BindingPlan, codec: Codec, options: { readonly direct?: boolean } = {}) {
    this.#plan = plan;
    this.#codec = codec;
    const direct = options.direct ?? true;
    this.#decode = direct ? checkedDecoder(compileDirectDecoder(plan.input), (json) => this.#genericRequest(json), plan.input) : null;
    this.#encode = direct
      ? checkedEncoder(compileDirectEncoder(plan.output, plan.responseField), (response) => this.#genericResponse(response), plan.output, codec)
      : null;
  }

  /** Whether requests and responses of this route can skip the generic path (for tests). */
  get direct(): { readonly request: boolean; readonly response: boolean } {
    return { request: this.#decode !== null, response: this.#encode !== null };
  }

  /**
   * Validates the bound JSON; throws INVALID_ARGUMENT with the generic
   * path's message when it is not a valid request. The result goes to
   * {@link handlerRequest} (separate, so a method without a handler still
   * reports a bad request first).
   */
  readRequest(json: JsonObject): ReadRequest {
    const direct = this.#decode === null ? NOT_DIRECT : this.#decode(json);
    if (direct !== NOT_DIRECT) return direct;
    return new ParsedMessage(parseRequest(this.#plan, json));
  }

  /** Whether {@link readRequest} took the direct way for this request (for tests). */
  static wentDirect(read: ReadRequest): boolean {
    return !(read instanceof ParsedMessage);
  }

  /** The handler's request object for what {@link readRequest} gave. */
  handlerRequest(read: ReadRequest): unknown {
    return read instanceof ParsedMessage ? this.#toHandler(read.message) : read;
  }

  /** The response as protobuf JSON text (only `response_body` when the rule names one). */
  writeResponse(response: unknown): string {
    const direct = this.#encode === null ? NOT_DIRECT : this.#encode(response);
    return direct !== NOT_DIRECT ? direct : this.#genericResponse(response);
  }

  #toHandler(message: Message): unknown {
    const wire = toBinary(this.#plan.input, message);
    return this.#codec.requestDeserialize(Buffer.from(wire.buffer, wire.byteOffset, wire.byteLength));
  }

  #genericRequest(json: JsonObject): unknown {
    return this.#toHandler(parseRequest(this.#plan, json));
  }

  #genericResponse(response: unknown): string {
    const plan = this.#plan;
    const message = fromBinary(plan.output, this.#codec.responseSerialize(response));
    // grpc-gateway's default: unpopulated fields emitted (EmitUnpopulated=true), int64 as strings.
    const json = toJson(plan.output, message, { alwaysEmitImplicit: true, registry: plan.registry });
    if (plan.responseField === null) return JSON.stringify(json);
    // Fields with explicit presence (messages, proto3 optional) are omitted when unset.
    return JSON.stringify((json as JsonObject)[plan.responseField.jsonName] ?? null);
  }
}

function parseRequest(plan: BindingPlan, json: JsonObject): Message {
  try {
    // ignoreUnknownFields is false on purpose. grpc-gateway v2 discards unknown
    // JSON fields (DiscardUnknown=true); we reject them with INVALID_ARGUMENT so
    // a misspelt field name fails loudly instead of falling back to a default.
    return fromJson(plan.input, json, { ignoreUnknownFields: false, registry: plan.registry });
  } catch (err) {
    throw invalidArgument("INVALID_REQUEST", `invalid request: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function checkedDecoder(decode: DirectDecoder | null, generic: (json: JsonObject) => unknown, desc: DescMessage): DirectDecoder | null {
  if (decode === null) return null;
  for (const probe of [{}, probeJson(desc, 0)]) {
    const direct = decode(probe);
    if (direct === NOT_DIRECT || !isDeepStrictEqual(direct, generic(probe))) return null;
  }
  return decode;
}

function checkedEncoder(encode: DirectEncoder | null, generic: (response: unknown) => string, desc: DescMessage, codec: Codec): DirectEncoder | null {
  if (encode === null) return null;
  for (const probe of [{}, probeJson(desc, 0)]) {
    const wire = toBinary(desc, fromJson(desc, probe));
    const response: unknown = codec.responseDeserialize(Buffer.from(wire.buffer, wire.byteOffset, wire.byteLength));
    if (encode(response) !== generic(response)) return null;
  }
  return encode;
}

/** JSON of `desc` with every field set to a value other than its default (messages to depth 2, lists of 2). */
function probeJson(desc: DescMessage, depth: number): JsonObject {
  const json: JsonObject = {};
  for (const field of desc.fields) {
    const value = probeValue(field, depth, 0);
    if (value === undefined) continue;
    json[field.jsonName] = field.fieldKind === "list" ? [value, probeValue(field, depth, 1)!] : value;
  }
  return json;
}

function probeValue(field: DescField, depth: number, nth: number): JsonValue | undefined {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind;
  if (kind === "message" && field.message !== undefined) return depth >= 2 ? undefined : probeJson(field.message, depth + 1);
  if (kind === "enum" && field.enum !== undefined) {
    const v = field.enum.values[Math.min(1 + nth, field.enum.values.length - 1)]!;
    return v.number === 0 ? undefined : v.jsonName;
  }
  if (field.scalar === undefined) return undefined;
  switch (field.scalar) {
    case ScalarType.STRING:
      return `p\u00e9${nth}`;
    case ScalarType.BOOL:
      return true;
    case ScalarType.BYTES:
      return nth === 0 ? "AQID" : "/+8=";
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return 0.1 + nth;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return 7 + nth;
    default:
      return -7 - nth;
  }
}
