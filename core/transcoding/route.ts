import type { DescField, DescMessage, DescMethod, FileRegistry } from "@bufbuild/protobuf";
import type { MethodDefinition } from "@grpc/grpc-js";
import { accessOfGrpcMethod, type Access } from "../auth/scopes.js";
import type { UnaryHandler } from "../call-context.js";
import type { UnaryServiceBinding } from "../service-binding.js";
import type { BindingPlan, BodyBinding } from "./binder.js";
import { findField, resolveFieldPath } from "./field-path.js";
import { RouteCodec } from "./handler-codec.js";
import { readHttpBindings, type HttpBinding } from "./http-rule.js";
import { parsePathTemplate, type PathTemplate } from "./path-template.js";

/** One HTTP route of one RPC, fully resolved when the transcoder is built. @internal */
export interface Route {
  /** Upper-case HTTP method. */
  readonly httpMethod: string;
  readonly template: PathTemplate;
  /** For logs and errors: "POST /v1/apps/{app}:predict (clipper.v1.Predict.Predict)". */
  readonly description: string;
  /** gRPC method path, e.g. "/clipper.v1.Predict/Predict". */
  readonly grpcPath: string;
  /** The scope a call of it needs (core/auth/scopes.ts), fixed when the route is built. */
  readonly access: Access;
  readonly plan: BindingPlan;
  /** Bound request JSON ↔ the handler's ts-proto objects. */
  readonly codec: RouteCodec;
  /** The binding's handler, or null when the binding has none (answered UNIMPLEMENTED, as grpc-js does). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see UnaryServiceBinding.handlers
  readonly handler: UnaryHandler<any, any> | null;
}

/**
 * Builds the routes of every annotated method of every binding, in order
 * (bindings, then methods in proto order, then a rule before its
 * additional_bindings). Throws with the method and rule in the message when
 * a binding names an unknown service or method, a rule is malformed or
 * names an unknown or unsuitable field, or an annotated method streams.
 *
 * @internal
 */
export function compileRoutes(bindings: readonly UnaryServiceBinding[], registry: FileRegistry): Route[] {
  const routes: Route[] = [];
  for (const binding of bindings) {
    const service = registry.getService(binding.name);
    if (service === undefined) throw new Error(`transcoding: service ${binding.name} is not in the descriptor set`);
    const keyByPath = new Map<string, string>();
    for (const [key, def] of Object.entries(binding.definition)) keyByPath.set(def.path, key);
    for (const key of Object.keys(binding.handlers)) {
      if (binding.definition[key] === undefined) throw new Error(`transcoding: ${binding.name} has no method ${key}`);
    }
    for (const method of service.methods) {
      const rules = readHttpBindings(registry, method);
      if (rules.length === 0) continue;
      const where = `${service.typeName}.${method.name}`;
      if (method.methodKind !== "unary") {
        throw new Error(`transcoding: ${where} is ${method.methodKind}; only unary methods can have a google.api.http rule here`);
      }
      const grpcPath = `/${service.typeName}/${method.name}`;
      // Keys come from the definition's paths, so the casing of ts-proto's keys never has to be guessed.
      const key = keyByPath.get(grpcPath);
      if (key === undefined) throw new Error(`transcoding: the definition bound as ${binding.name} has no method ${grpcPath}`);
      for (const rule of rules) {
        routes.push(compileRoute(method, rule, where, grpcPath, binding, key, registry));
      }
    }
  }
  return routes;
}

function compileRoute(
  method: DescMethod,
  rule: HttpBinding,
  where: string,
  grpcPath: string,
  binding: UnaryServiceBinding,
  key: string,
  registry: FileRegistry,
): Route {
  const description = `${rule.httpMethod} ${rule.pathTemplate} (${where})`;
  const fail = (why: string): never => {
    throw new Error(`transcoding: ${description}: ${why}`);
  };
  let template: PathTemplate;
  try {
    template = parsePathTemplate(rule.pathTemplate);
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
  const pathFields = template.variables.map((v) => pathField(method.input, v.fieldPath, fail));
  const body = bodyBinding(method.input, rule.body, pathFields, fail);
  const responseField = rule.responseBody === "" ? null : topLevelField(method.output, rule.responseBody, "response_body", fail);
  const plan: BindingPlan = {
    input: method.input,
    output: method.output,
    pathFields,
    pathMultiSegment: template.variables.map((v) => v.multiSegment),
    body,
    responseField,
    registry,
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each method has its own request/response types
  const definition: MethodDefinition<any, any> = binding.definition[key]!;
  return {
    httpMethod: rule.httpMethod,
    template,
    description,
    grpcPath,
    access: accessOfGrpcMethod(grpcPath),
    plan,
    codec: new RouteCodec(plan, definition),
    handler: binding.handlers[key] ?? null,
  };
}

/** http.proto: a path variable must name a singular primitive field (possibly nested). */
function pathField(input: DescMessage, fieldPath: string, fail: (why: string) => never): DescField[] {
  const resolved = resolveFieldPath(input, fieldPath);
  if (!resolved.ok) return fail(`path variable ${resolved.error}`);
  const leaf = resolved.fields[resolved.fields.length - 1]!;
  if (leaf.fieldKind !== "scalar" && leaf.fieldKind !== "enum") {
    return fail(`path variable '${fieldPath}' must be a singular scalar or enum field, not ${leaf.fieldKind}`);
  }
  return resolved.fields;
}

function bodyBinding(input: DescMessage, body: string, pathFields: readonly DescField[][], fail: (why: string) => never): BodyBinding {
  if (body === "") return { kind: "none" };
  if (body === "*") return { kind: "all" };
  const field = topLevelField(input, body, "body", fail);
  if (pathFields.some((p) => p[0] === field)) fail(`body field '${body}' is also bound by the path`);
  return { kind: "field", field };
}

function topLevelField(message: DescMessage, name: string, what: string, fail: (why: string) => never): DescField {
  return findField(message, name) ?? fail(`${what} '${name}' is not a field of ${message.typeName}`);
}
