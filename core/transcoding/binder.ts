/**
 * Turns an HTTP request (path variables, query string, JSON body) into the
 * protobuf JSON object of the request message, following
 * google/api/http.proto and grpc-gateway. The protobuf JSON mapping itself
 * (names, int64 strings, enums, base64, well-known types) is applied to
 * that object by handler-codec.ts.
 */
import { ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue, type Registry } from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";
import { resolveFieldPath } from "./field-path.js";
import { decodedPathText } from "../servers/request-target.js";

/** Where the request body goes (the rule's `body`). @internal */
export type BodyBinding =
  | { readonly kind: "none" }
  | { readonly kind: "all" }
  | { readonly kind: "field"; readonly field: DescField };

/** Everything the binder needs about one route, resolved once when routes are built. @internal */
export interface BindingPlan {
  readonly input: DescMessage;
  readonly output: DescMessage;
  /** Fields along each path variable's field path, index-aligned with the template's variables. */
  readonly pathFields: readonly (readonly DescField[])[];
  /** Per path variable: true when it may span segments (its '/' separators are kept). */
  readonly pathMultiSegment: readonly boolean[];
  readonly body: BodyBinding;
  /** The `response_body` field, or null to send the whole response. */
  readonly responseField: DescField | null;
  /** Resolves google.protobuf.Any and extensions in JSON. */
  readonly registry: Registry;
}

/** Outcome of {@link bindJson}; `error` is a message for the caller (INVALID_ARGUMENT). @internal */
export type BindResult = { readonly ok: true; readonly json: JsonObject } | { readonly ok: false; readonly error: string };

/** Well-known message types whose JSON form is a string, so a query parameter can carry them. */
const STRING_JSON_WKTS: ReadonlySet<string> = new Set([
  "google.protobuf.Timestamp",
  "google.protobuf.Duration",
  "google.protobuf.FieldMask",
]);

/** Spellings Go's strconv.ParseBool accepts, which grpc-gateway uses for query and path values. */
const BOOL_TEXT: ReadonlyMap<string, boolean> = new Map([
  ["true", true], ["True", true], ["TRUE", true], ["t", true], ["T", true], ["1", true],
  ["false", false], ["False", false], ["FALSE", false], ["f", false], ["F", false], ["0", false],
]);

/**
 * Builds the request's JSON object: the body per `plan.body`, then query
 * parameters (only when the body is not "*"), then path variables, which
 * win over both. `captures` are the raw (percent-encoded) variable texts
 * from the path match; `body` is null when the rule takes no body.
 * Never throws: untrusted input yields `{ok: false, error}`.
 *
 * @internal
 */
export function bindJson(plan: BindingPlan, captures: readonly string[], query: URLSearchParams, body: Buffer | null): BindResult {
  let root: JsonObject = {};
  if (plan.body.kind !== "none") {
    const parsed = parseJsonBody(body);
    if (!parsed.ok) return parsed;
    if (plan.body.kind === "all") {
      if (parsed.value !== undefined) {
        if (!isObject(parsed.value)) return { ok: false, error: "request body must be a JSON object" };
        // JSON.parse gave us a fresh object; using it as is (no copy) also keeps
        // a "__proto__" key an ordinary key, which is then rejected as unknown.
        root = parsed.value;
      }
      // http.proto: with body "*" there can be no query parameters. grpc-gateway
      // ignores them; we refuse them so a misplaced field is not silently lost.
      const first = query.keys().next();
      if (first.done !== true) {
        return { ok: false, error: `query parameter '${first.value}' is not accepted: this method takes every field in the JSON body` };
      }
    } else if (parsed.value !== undefined) {
      root[plan.body.field.jsonName] = parsed.value;
    }
  }
  if (plan.body.kind !== "all") {
    const error = bindQuery(plan, query, root);
    if (error !== null) return { ok: false, error };
  }
  for (let i = 0; i < plan.pathFields.length; i++) {
    const fields = plan.pathFields[i]!;
    const text = decodePathValue(captures[i]!, plan.pathMultiSegment[i]!);
    if (text === null) return { ok: false, error: `path variable '${dotted(fields)}' has invalid percent-encoding` };
    const value = jsonFromText(fields[fields.length - 1]!, text);
    if (!value.ok) return value;
    const error = setAt(root, fields, value.value, true);
    if (error !== null) return { ok: false, error };
  }
  return { ok: true, json: root };
}

function parseJsonBody(body: Buffer | null): { ok: true; value: JsonValue | undefined } | { ok: false; error: string } {
  // An empty body is an empty message, as grpc-gateway tolerates io.EOF.
  if (body === null || body.length === 0) return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(body.toString("utf8")) as JsonValue };
  } catch (err) {
    return { ok: false, error: `invalid JSON body: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Query parameters into `root`; returns an error message or null. */
function bindQuery(plan: BindingPlan, query: URLSearchParams, root: JsonObject): string | null {
  const seen = new Set<string>();
  for (const name of query.keys()) {
    if (seen.has(name)) continue;
    seen.add(name);
    const resolved = resolveFieldPath(plan.input, name);
    if (!resolved.ok) return `unknown query parameter ${resolved.error}`;
    const fields = resolved.fields;
    // Fields bound by the path or the body are not taken from the query (grpc-gateway's filter).
    if (isReserved(plan, fields)) continue;
    const leaf = fields[fields.length - 1]!;
    const texts = query.getAll(name);
    let value: JsonValue;
    if (leaf.fieldKind === "list") {
      if (leaf.listKind === "message") return `query parameter '${name}' is a repeated message field, which a query string cannot carry`;
      const items: JsonValue[] = [];
      for (const text of texts) {
        const item = leaf.listKind === "enum" ? enumFromText(text) : scalarFromText(leaf.name, leaf.scalar, text);
        if (!item.ok) return item.error;
        items.push(item.value);
      }
      value = items;
    } else {
      if (texts.length > 1) return `query parameter '${name}' is not repeated but is given ${texts.length} times`;
      const single = jsonFromText(leaf, texts[0]!);
      if (!single.ok) return single.error;
      value = single.value;
    }
    const error = setAt(root, fields, value, false);
    if (error !== null) return error;
  }
  return null;
}

function isReserved(plan: BindingPlan, fields: readonly DescField[]): boolean {
  if (plan.body.kind === "field" && fields[0] === plan.body.field) return true;
  return plan.pathFields.some((p) => p.length <= fields.length && p.every((f, i) => fields[i] === f));
}

/** A path or query text as the JSON value protobuf JSON expects for a singular field. */
function jsonFromText(field: DescField, text: string): { ok: true; value: JsonValue } | { ok: false; error: string } {
  switch (field.fieldKind) {
    case "scalar":
      return scalarFromText(field.name, field.scalar, text);
    case "enum":
      return enumFromText(text);
    case "message":
      if (STRING_JSON_WKTS.has(field.message.typeName)) return { ok: true, value: text };
      if (isWrapperDesc(field.message)) return scalarFromText(field.name, field.message.fields[0].scalar, text);
      return { ok: false, error: `field '${field.name}' is a message; set its fields one by one (e.g. '${field.name}.<field>')` };
    default:
      return { ok: false, error: `field '${field.name}' (a map) cannot be set from a URL` };
  }
}

function scalarFromText(name: string, scalar: ScalarType, text: string): { ok: true; value: JsonValue } | { ok: false; error: string } {
  if (scalar !== ScalarType.BOOL) {
    // Numbers stay strings: protobuf JSON accepts quoted numbers and fromJson validates them.
    return { ok: true, value: text };
  }
  const b = BOOL_TEXT.get(text);
  return b === undefined ? { ok: false, error: `field '${name}': '${text}' is not a boolean (use true or false)` } : { ok: true, value: b };
}

/** Enums by name or by number; protobuf JSON wants a number as a JSON number. */
function enumFromText(text: string): { ok: true; value: JsonValue } {
  return { ok: true, value: /^-?\d+$/.test(text) ? Number(text) : text };
}

/**
 * Decodes a path variable. A multi-segment variable keeps '/' as a separator
 * and an encoded "%2F" stays encoded, so the two remain distinguishable.
 */
function decodePathValue(raw: string, multiSegment: boolean): string | null {
  return decodedPathText(multiSegment ? raw.replace(/%2F/gi, "%252F") : raw);
}

/**
 * Sets `value` at `fields` in a JSON object whose keys may use either
 * spelling (proto or JSON name). With `override`, an existing value is
 * replaced (path variables win); otherwise it is an error (the same field
 * given twice under both spellings).
 */
function setAt(root: JsonObject, fields: readonly DescField[], value: JsonValue, override: boolean): string | null {
  let obj = root;
  for (let i = 0; i < fields.length - 1; i++) {
    const f = fields[i]!;
    const key = Object.hasOwn(obj, f.jsonName) ? f.jsonName : Object.hasOwn(obj, f.name) ? f.name : null;
    const existing = key === null ? null : obj[key]!;
    if (existing === null) {
      const next: JsonObject = {};
      obj[key ?? f.jsonName] = next;
      obj = next;
    } else if (isObject(existing)) {
      obj = existing;
    } else {
      return `field '${dotted(fields.slice(0, i + 1))}' must be a JSON object`;
    }
  }
  const leaf = fields[fields.length - 1]!;
  const present = Object.hasOwn(obj, leaf.jsonName) || Object.hasOwn(obj, leaf.name);
  if (present && !override) return `field '${dotted(fields)}' is given more than once`;
  delete obj[leaf.name];
  delete obj[leaf.jsonName];
  obj[leaf.jsonName] = value;
  return null;
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function dotted(fields: readonly DescField[]): string {
  return fields.map((f) => f.name).join(".");
}
