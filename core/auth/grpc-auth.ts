import { ServerInterceptingCall, ServerListenerBuilder, type ServerInterceptor } from "@grpc/grpc-js";
import type { Authorizer } from "./authorizer.js";
import { accessOfGrpcMethod } from "./scopes.js";

/**
 * A grpc-js server interceptor that admits a call only when its
 * `authorization` metadata grants the scope its method needs
 * (core/auth/scopes.ts). A refused call ends with UNAUTHENTICATED or
 * PERMISSION_DENIED before any handler sees it, for unary and streaming
 * methods, reflection and Heartbeat alike; health stays open.
 */
export function authInterceptor(authorizer: Authorizer): ServerInterceptor {
  return (method, call) => {
    const access = accessOfGrpcMethod(method.path);
    if (access === "open") return new ServerInterceptingCall(call);
    return new ServerInterceptingCall(call, {
      start(next) {
        next(
          new ServerListenerBuilder()
            .withOnReceiveMetadata((metadata, pass) => {
              const values = metadata.get("authorization");
              const refused = authorizer.check(values.length === 1 ? String(values[0]) : values.length > 1 ? "" : undefined, access);
              if (refused === null) pass(metadata);
              else call.sendStatus({ code: refused.code, details: refused.message });
            })
            .build(),
        );
      },
    });
  };
}
