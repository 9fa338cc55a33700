/**
 * The grpc-js server every clipper-ts process serves gRPC with: unary
 * handlers adapted from transport-agnostic bindings, streaming methods
 * passed through, grpc.health.v1 and server reflection (v1 + v1alpha).
 */
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import type { Authorizer } from "../auth/authorizer.js";
import { authInterceptor } from "../auth/grpc-auth.js";
import { accessOfGrpcMethod } from "../auth/scopes.js";
import { checkedAtDoor, type GrpcDoor } from "./shed-while-behind.js";
import type { UnaryHandler } from "../call-context.js";
import { descriptorSet } from "../descriptor-set.js";
import { ServingError } from "../errors.js";
import { grpcCallContext } from "../grpc-call-context.js";
import type { UnaryServiceBinding } from "../service-binding.js";
import type { ServerTls } from "../tls/server-tls.js";
import { addReflection, REFLECTION_SERVICE_NAMES } from "./reflection.js";

/** Grace period close() gives in-flight calls before cancelling them, in ms. */
export const DEFAULT_CLOSE_GRACE_MS = 5_000;

/** The standard health service name (grpc/health/v1/health.proto). */
const HEALTH_SERVICE_NAME = "grpc.health.v1.Health";

/** Options of {@link startGrpcServer}. */
export interface GrpcServerOptions {
  /** Interface to bind, e.g. "127.0.0.1", "0.0.0.0" or "::". */
  readonly host: string;
  /** TCP port; 0 picks a free one (see {@link GrpcServerHandle.port}). */
  readonly port: number;
  /** Services whose unary methods run transport-agnostic handlers. */
  readonly bindings: readonly UnaryServiceBinding[];
  /**
   * Extra grpc-js implementations (streaming methods), keyed by the full
   * service name of a binding, merged into that service. Keys are the
   * lowerCamel method names of the binding's definition.
   */
  readonly streaming?: Readonly<Record<string, grpc.UntypedServiceImplementation>>;
  /** Serialized FileDescriptorSet for reflection; defaults to {@link descriptorSet}. */
  readonly descriptors?: Uint8Array;
  /**
   * Called with the original thrown value for every call that ends INTERNAL
   * (the caller only sees "internal error"). `method` is the gRPC path.
   */
  readonly onError?: (err: unknown, method: string) => void;
  /** Admits each call by its token and its method's scope; every call is admitted when absent. */
  readonly auth?: Authorizer;
  /** Serves TLS (mutual when it has a client CA); plaintext when absent. */
  readonly tls?: ServerTls;
  /** How long reflection streams may stay blocked on a client that does not read, ms (default: core/servers/bounded-stream.ts). */
  readonly streamStallMs?: number;
  /**
   * A check each unary call needing the predict scope (core/auth/scopes.ts)
   * passes once decoded, before its context is built, judged by the subject
   * its request names (core/servers/shed-while-behind.ts); a refusal ends
   * the call with its status and Retry-After trailers.
   */
  readonly door?: GrpcDoor;
}

/** A started server. */
export interface GrpcServerHandle {
  readonly server: grpc.Server;
  /** The bound port (the free port picked when options.port was 0). */
  readonly port: number;
  readonly health: {
    /** Sets SERVING / NOT_SERVING for a service name, or "" for the whole server. */
    setServing(service: string, serving: boolean): void;
  };
  /**
   * Stops accepting calls, waits up to `graceMs` (default
   * {@link DEFAULT_CLOSE_GRACE_MS}) for in-flight calls, then cancels the rest.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * Builds and binds a grpc-js server (TLS when given, else plaintext) with the given
 * bindings, health (every bound service and "" start SERVING) and reflection
 * listing exactly the services added. Throws at start, not per call, when a
 * binding names a method its definition lacks or a streaming entry names an
 * unbound service.
 */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServerHandle> {
  // No interceptor at all without auth: the hot path pays nothing for it.
  const server = new grpc.Server(options.auth === undefined ? {} : { interceptors: [authInterceptor(options.auth)] });
  const served: string[] = [];
  const streaming = options.streaming ?? {};
  for (const name of Object.keys(streaming)) {
    if (!options.bindings.some((b) => b.name === name)) {
      throw new Error(`streaming implementation given for ${name}, which has no binding`);
    }
  }
  for (const binding of options.bindings) {
    server.addService(tolerantDefinition(binding), serviceImplementation(binding, streaming[binding.name] ?? {}, options.onError, options.door ?? null));
    served.push(binding.name);
  }

  const health = new HealthImplementation(Object.fromEntries(["", ...served].map((name) => [name, "SERVING" as const])));
  health.addToServer(server);

  const descriptors = options.descriptors ?? descriptorSet();
  addReflection(server, {
    descriptors,
    services: [...served, HEALTH_SERVICE_NAME, ...REFLECTION_SERVICE_NAMES],
    ...(options.streamStallMs === undefined ? {} : { stallMs: options.streamStallMs }),
  });

  let port: number;
  try {
    port = await bind(server, options.host, options.port, options.tls?.grpcCredentials() ?? grpc.ServerCredentials.createInsecure());
  } catch (err) {
    server.forceShutdown();
    throw err;
  }
  return {
    server,
    port,
    health: {
      setServing(service: string, serving: boolean): void {
        health.setStatus(service, serving ? "SERVING" : "NOT_SERVING");
      },
    },
    close(graceMs = DEFAULT_CLOSE_GRACE_MS): Promise<void> {
      // Health watchers learn of the shutdown before their streams are cut.
      for (const name of ["", ...served]) health.setStatus(name, "NOT_SERVING");
      return shutdown(server, graceMs);
    },
  };
}

/**
 * A request whose bytes are not its message. grpc-js answers a throwing
 * deserializer with INTERNAL, which tells a caller the server failed; the
 * caller's bytes were wrong, so unary methods get this in place of the
 * request and answer INVALID_ARGUMENT.
 */
class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/** The binding's definition with each unary handler's request decoder turned into one that never throws. */
function tolerantDefinition(binding: UnaryServiceBinding): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [key, method] of Object.entries(binding.definition as Record<string, grpc.MethodDefinition<unknown, unknown>>)) {
    if (!(key in binding.handlers) || method.requestStream || method.responseStream) {
      out[key] = method;
      continue;
    }
    const decode = method.requestDeserialize;
    out[key] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return decode(bytes);
        } catch (err) {
          return new UndecodableRequest(err instanceof Error ? err.message : String(err));
        }
      },
    };
  }
  return out;
}

/** Merges a binding's adapted unary handlers with its streaming implementations. */
function serviceImplementation(
  binding: UnaryServiceBinding,
  streaming: grpc.UntypedServiceImplementation,
  onError: GrpcServerOptions["onError"],
  door: GrpcDoor | null,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [key, handler] of Object.entries(binding.handlers)) {
    const method = binding.definition[key];
    if (method === undefined) throw new Error(`${binding.name} has no method ${key}`);
    if (method.requestStream || method.responseStream) {
      throw new Error(`${binding.name}.${key} is streaming; pass it in options.streaming, not as a unary handler`);
    }
    impl[key] = adaptUnary(method.path, handler, onError, checkedAtDoor(accessOfGrpcMethod(method.path)) ? door : null);
  }
  for (const [key, handler] of Object.entries(streaming)) {
    if (binding.definition[key] === undefined) throw new Error(`${binding.name} has no method ${key}`);
    if (key in impl) throw new Error(`${binding.name}.${key} is given both as a unary handler and in options.streaming`);
    impl[key] = handler;
  }
  // Methods in neither get grpc-js's default UNIMPLEMENTED handler.
  return impl;
}

/** Wraps a transport-agnostic handler as a grpc-js unary method (built once per method). */
function adaptUnary(
  path: string,
  handler: UnaryHandler<unknown, unknown>,
  onError: GrpcServerOptions["onError"],
  door: GrpcDoor | null,
): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const undecodable = call.request instanceof UndecodableRequest ? call.request : null;
    const refused = door === null ? null : door.check(undecodable === null ? door.subjectOf(call.request) : undefined);
    if (refused !== null) {
      callback({ code: refused.code, details: refused.message, metadata: trailersOf(refused) });
      return;
    }
    if (undecodable !== null) {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: `the request is not a valid message for ${path}: ${undecodable.reason}` });
      return;
    }
    const scope = grpcCallContext(call);
    handler(call.request, scope.ctx).then(
      (response) => {
        scope.dispose();
        callback(null, response);
      },
      (err: unknown) => {
        scope.dispose();
        const status = ServingError.from(err);
        // A thrown "OK" would end the call with no response; treat it as a bug.
        const code = status.code === grpc.status.OK ? grpc.status.INTERNAL : status.code;
        if (code === grpc.status.INTERNAL) onError?.(err, path);
        callback({ code, details: code === status.code ? status.message : "internal error", metadata: trailersOf(status) });
      },
    );
  };
}

/**
 * The trailers an error's hints become. A Retry-After (seconds) is sent as
 * `retry-after` for people and proxies, and as gRPC's own server pushback,
 * `grpc-retry-pushback-ms` (gRFC A6), which a client with a retry policy
 * honours before its next attempt.
 */
function trailersOf(error: ServingError): grpc.Metadata {
  const metadata = new grpc.Metadata();
  const retryAfter = error.headers["retry-after"];
  if (retryAfter !== undefined && /^\d+$/.test(retryAfter)) {
    metadata.set("retry-after", retryAfter);
    metadata.set("grpc-retry-pushback-ms", String(Number(retryAfter) * 1000));
  }
  return metadata;
}

function bind(server: grpc.Server, host: string, port: number, credentials: grpc.ServerCredentials): Promise<number> {
  // IPv6 literals need brackets in a grpc-js address ("[::]:50051").
  const address = host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, bound) => {
      if (err !== null) reject(new Error(`cannot bind gRPC server to ${address}: ${err.message}`, { cause: err }));
      else resolve(bound);
    });
  });
}

function shutdown(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
