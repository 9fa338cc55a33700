// Generates gen/ from proto/ (TypeScript, and Python when its generators are
// installed): copies the third-party .proto files the
// contracts import out of their npm packages into third_party/ (ignored by
// git, never committed), runs `buf generate` (ts-proto) and writes the
// FileDescriptorSet that server reflection and HTTP transcoding read.
// Runs offline; `npm ci` calls it through the "prepare" script.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "package.json"));
const pkgDir = (name) => dirname(require.resolve(`${name}/package.json`));

/** [npm package, path inside it, path under third_party/] */
const THIRD_PARTY = [
  ["google-proto-files", "google/api/annotations.proto", "google/api/annotations.proto"],
  ["google-proto-files", "google/api/http.proto", "google/api/http.proto"],
  ["google-proto-files", "google/rpc/status.proto", "google/rpc/status.proto"],
  ["grpc-health-check", "proto/health/v1/health.proto", "grpc/health/v1/health.proto"],
  ["@grpc/reflection", "build/proto/grpc/reflection/v1/reflection.proto", "grpc/reflection/v1/reflection.proto"],
  ["@grpc/reflection", "build/proto/grpc/reflection/v1alpha/reflection.proto", "grpc/reflection/v1alpha/reflection.proto"],
];

const thirdParty = join(root, "third_party");
rmSync(thirdParty, { recursive: true, force: true });
for (const [pkg, from, to] of THIRD_PARTY) {
  const dest = join(thirdParty, to);
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(join(pkgDir(pkg), from), dest);
}

const buf = join(root, "node_modules", ".bin", "buf");
const run = (args) => execFileSync(buf, args, { cwd: root, stdio: "inherit" });
run(["generate"]);
// After generate: its `clean: true` empties gen/ first.
run(["build", "-o", "gen/descriptors.binpb"]);

// Python stubs from the same protos into gen/python/: protobuf messages
// whenever protoc is installed (the Python model worker,
// worker/python/clipper_worker, needs only those), and grpcio services
// beside them when grpc_python_plugin is too (Debian: protobuf-compiler,
// protobuf-compiler-grpc). Only our contracts and the google/api +
// google/rpc files they import: a gen/python/grpc/ folder would shadow the
// grpcio package itself.
const onPath = (cmd) => execFileSync("sh", ["-c", `command -v ${cmd} || true`]).toString().trim() !== "";
const pythonPaths = ["--path", "proto/clipper", "--path", "proto/inference", "--path", "third_party/google"];
if (onPath("protoc") && onPath("grpc_python_plugin")) {
  run(["generate", "--template", "buf.gen.python.yaml", ...pythonPaths]);
} else if (onPath("protoc")) {
  const messagesOnly = { version: "v2", plugins: [{ protoc_builtin: "python", out: "gen/python" }] };
  run(["generate", "--template", JSON.stringify(messagesOnly), ...pythonPaths]);
  console.log("gen: Python grpcio services skipped (no grpc_python_plugin; on Debian: apt-get install protobuf-compiler-grpc); messages written");
} else {
  console.log("gen: Python stubs skipped (no protoc; on Debian: apt-get install protobuf-compiler protobuf-compiler-grpc)");
}
