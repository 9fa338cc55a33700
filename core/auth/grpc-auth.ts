import { ServerInterceptingCall, ServerListenerBuilder, type ServerInterceptor } from "@grpc/grpc-js";
import type { Authorizer } from "./authorizer.js";
import { accessOfGrpcMethod, type Access } from "./scopes.js";

/**
 * A grpc-js server interceptor that admits a call only when its
 * `authorization` metadata grants the scope its method needs
 * (core/auth/scopes.ts). A refused call ends with UNAUTHENTICATED or
 * PERMISSION_DENIED before any handler sees it, for unary and streaming
 * methods, reflection and Heartbeat alike; health stays open.
 */
export function authInterceptor(authorizer: Authorizer): ServerInterceptor {
  // Per method definition (grpc-js keeps one per registered method), so a call pays no path parsing.
  const known = new WeakMap<object, Access>();
  const accessOf = (method: { readonly path: string }): Access => {
    let access = known.get(method);
    if (access === undefined) {
      access = accessOfGrpcMethod(method.path);
      known.set(method, access);
    }
    return access;
  };
  return (method, call) => {
    const access = accessOf(method);
    if (access === "open") return new ServerInterceptingCall(call);
    return new ServerInterceptingCall(call, {
      start(next) {
        next(
          new ServerListenerBuilder()
            .withOnReceiveMetadata((metadata, pass) => {
              // Node's HTTP/2 layer keeps one authorization value: it drops repeats of single-value headers.
              const value = metadata.get("authorization")[0];
              const refused = authorizer.check(value === undefined ? undefined : String(value), access);
              if (refused === null) pass(metadata);
              else call.sendStatus({ code: refused.code, details: refused.message });
            })
            .build(),
        );
      },
    });
  };
}
