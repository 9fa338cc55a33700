/**
 * HTTP/JSON transcoding of unary gRPC services by their google.api.http
 * annotations (grpc-gateway's rules). End users need createTranscoder;
 * the rest is for tests.
 */
export { createTranscoder, type ErrorHook, type TranscoderOptions } from "./transcoder.js";
export { loadDescriptorRegistry, readHttpBindings, type HttpBinding } from "./http-rule.js";
export { parsePathTemplate, matchPathTemplate, type PathTemplate } from "./path-template.js";
