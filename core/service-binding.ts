import type { ServiceDefinition } from "@grpc/grpc-js";
import type { UnaryHandler } from "./call-context.js";

/**
 * A protobuf service's unary methods bound to transport-agnostic handlers.
 * The gRPC server (core/servers/grpc-server) and the HTTP transcoder
 * (core/transcoding) both serve the same binding, so every edge runs the
 * same handler code.
 */
export interface UnaryServiceBinding {
  /** Fully qualified protobuf service name, e.g. "clipper.v1.Admin". */
  readonly name: string;
  /** The ts-proto generated grpc-js definition (paths and codecs). */
  readonly definition: ServiceDefinition;
  /**
   * Handlers keyed like `definition` (lowerCamelCase method names, e.g.
   * `createApp`). Streaming methods are not listed here; their grpc-js
   * implementations are passed to the gRPC server separately.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each method has its own request/response types
  readonly handlers: Readonly<Record<string, UnaryHandler<any, any>>>;
}
