import {
  createFileRegistry,
  fromBinary,
  getOption,
  hasOption,
  type DescExtension,
  type DescMethod,
  type FileRegistry,
} from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

/** The method option holding the rule: `extend google.protobuf.MethodOptions { HttpRule http = 72295728; }`. */
const HTTP_RULE_EXTENSION = "google.api.http";

/**
 * One HTTP binding of an RPC, flattened from a google.api.HttpRule: the
 * primary rule and each of its `additional_bindings` give one of these.
 */
export interface HttpBinding {
  /** Upper-case HTTP method: GET, PUT, POST, DELETE, PATCH, or a custom kind. */
  readonly httpMethod: string;
  /** The path template, e.g. "/v1/apps/{app}:predict". */
  readonly pathTemplate: string;
  /** "" (no body), "*" (the whole request) or a top-level request field name. */
  readonly body: string;
  /** "" (the whole response) or a top-level response field name. */
  readonly responseBody: string;
}

/**
 * google.api.HttpRule as @bufbuild/protobuf shapes it from registry
 * descriptors (no generated code exists for it here): the `pattern` oneof
 * is `{case, value}`, field names are localNames.
 */
interface HttpRuleMessage {
  readonly pattern:
    | { readonly case: "get" | "put" | "post" | "delete" | "patch"; readonly value: string }
    | { readonly case: "custom"; readonly value: { readonly kind: string; readonly path: string } }
    | { readonly case: undefined; readonly value?: undefined };
  readonly body: string;
  readonly responseBody: string;
  readonly additionalBindings: readonly HttpRuleMessage[];
}

/**
 * Decodes a serialized google.protobuf.FileDescriptorSet (gen/descriptors.binpb)
 * into a registry. Throws when the set does not link (a missing import),
 * which callers do once, at startup.
 */
export function loadDescriptorRegistry(descriptorSet: Uint8Array): FileRegistry {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptorSet));
}

/**
 * Reads the HTTP bindings a registry's descriptors declare for `method`:
 * the google.api.http rule, then its additional_bindings, in that order.
 * Returns [] when the method has no rule. Throws on a malformed rule.
 */
export function readHttpBindings(registry: FileRegistry, method: DescMethod): HttpBinding[] {
  const extension = httpRuleExtension(registry);
  if (!hasOption(method, extension)) return [];
  // The registry's descriptor for google.api.HttpRule defines this shape.
  const rule = getOption(method, extension) as unknown as HttpRuleMessage;
  const where = `${method.parent.typeName}.${method.name}`;
  const out = [toBinding(rule, where)];
  for (const extra of rule.additionalBindings) {
    // http.proto: "the nesting may only be one level deep".
    if (extra.additionalBindings.length > 0) throw new Error(`${where}: additional_bindings may not nest`);
    out.push(toBinding(extra, where));
  }
  return out;
}

function httpRuleExtension(registry: FileRegistry): DescExtension {
  const extension = registry.getExtension(HTTP_RULE_EXTENSION);
  if (extension === undefined) {
    throw new Error(`descriptor set has no ${HTTP_RULE_EXTENSION} extension (google/api/annotations.proto is missing)`);
  }
  return extension;
}

function toBinding(rule: HttpRuleMessage, where: string): HttpBinding {
  const p = rule.pattern;
  let httpMethod: string;
  let pathTemplate: string;
  if (p.case === undefined) throw new Error(`${where}: google.api.http rule has no pattern`);
  if (p.case === "custom") {
    if (p.value.kind === "") throw new Error(`${where}: custom google.api.http pattern has no kind`);
    httpMethod = p.value.kind.toUpperCase();
    pathTemplate = p.value.path;
  } else {
    httpMethod = p.case.toUpperCase();
    pathTemplate = p.value;
  }
  if (httpMethod === "GET" && rule.body !== "") throw new Error(`${where}: a GET rule cannot have a body`);
  return { httpMethod, pathTemplate, body: rule.body, responseBody: rule.responseBody };
}
