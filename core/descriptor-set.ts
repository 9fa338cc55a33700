import { readFileSync } from "node:fs";

/**
 * Where `npm run gen` writes the `buf build` FileDescriptorSet (repo root
 * gen/; scripts/build.mjs copies it beside the compiled code).
 */
const DESCRIPTORS_URL = new URL("../gen/descriptors.binpb", import.meta.url);

let cached: Uint8Array | null = null;

/**
 * The serialized google.protobuf.FileDescriptorSet of every service this
 * repository defines (with google/api annotations), read from disk once per
 * process, on first use. Reflection and the transcoder both default to it.
 * Shared: callers must not modify it.
 */
export function descriptorSet(): Uint8Array {
  return (cached ??= readFileSync(DESCRIPTORS_URL));
}
