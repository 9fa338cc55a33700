/** The scope table, the tokens file and the authorizer on their own. */
import test from "ava";
import { status } from "@grpc/grpc-js";
import { Authorizer } from "../../core/auth/authorizer.js";
import { accessOfGrpcMethod, parseScopes } from "../../core/auth/scopes.js";
import { parseTokenFile, tokenHash } from "../../core/auth/token-file.js";

test("each gRPC method needs its scope; health is open; unknown methods need admin", (t) => {
  const cases: [string, string][] = [
    ["/clipper.v1.Predict/Predict", "predict"],
    ["/clipper.v1.Predict/PredictStream", "predict"],
    ["/clipper.v1.Heartbeat/WatchWorkers", "read"],
    ["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "read"],
    ["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "read"],
    ["/grpc.health.v1.Health/Check", "open"],
    ["/clipper.v1.Admin/GetApp", "read"],
    ["/clipper.v1.Admin/ListDeployments", "read"],
    ["/clipper.v1.Admin/CreateApp", "admin"],
    ["/clipper.v1.Admin/SetNumReplicas", "admin"],
    ["/clipper.v1.Admin/SetModelVersion", "admin"],
    ["/clipper.v1.Admin/DeployModel", "deploy"],
    ["/inference.GRPCInferenceService/ModelInfer", "predict"],
    ["/inference.GRPCInferenceService/ServerMetadata", "read"],
    ["/inference.GRPCInferenceService/ModelMetadata", "read"],
    ["/inference.GRPCInferenceService/ServerLive", "open"],
    ["/inference.GRPCInferenceService/ServerReady", "open"],
    ["/inference.GRPCInferenceService/ModelReady", "open"],
    ["/inference.GRPCInferenceService/ModelConfig", "admin"],
    ["/other.Service/Method", "admin"],
  ];
  for (const [path, access] of cases) t.is(accessOfGrpcMethod(path) as string, access, path);
});

test("scope lists: commas, spaces and unknown names", (t) => {
  const ok = parseScopes("predict, read");
  t.true(ok.ok);
  if (ok.ok) t.deepEqual([...ok.value].sort(), ["predict", "read"]);
  t.deepEqual(parseScopes("predict,write"), { ok: false, error: "unknown scope 'write' (scopes are predict, read, admin, deploy)" });
});

test("the tokens file: comments, hashed tokens, and errors that name the line but never the token", (t) => {
  const secret = "s3cret-token-of-enough-length";
  const text = [
    "# operators",
    `predict,read ${secret}  # a comment`,
    "",
    `admin sha256:${tokenHash("another-long-enough-token").toString("hex")}`,
  ].join("\n");
  const parsed = parseTokenFile(text, "tokens");
  t.true(parsed.ok);
  if (!parsed.ok) return;
  t.is(parsed.value.length, 2);
  t.deepEqual(parsed.value[0]!.hash, tokenHash(secret));
  t.is(parsed.value[1]!.where, "tokens:4");
  for (const [bad, message] of [
    [`predict`, /tokens:1: expected '<scopes> <token>'/],
    [`root ${secret}`, /tokens:1: unknown scope 'root'/],
    [`predict short`, /tokens:1: token is shorter than 16 characters/],
    [`predict sha256:abc`, /tokens:1: a hashed token is sha256: and 64 hex digits/],
  ] as const) {
    const r = parseTokenFile(bad, "tokens");
    t.false(r.ok, bad);
    if (!r.ok) {
      t.regex(r.error, message);
      t.false(r.error.includes(secret), "the error never echoes the token");
    }
  }
});

test("the authorizer: 401 without or with an unknown token, 403 without the scope, anonymous scopes, open access", (t) => {
  const entries = parseTokenFile("predict predict-token-0123456789\nread,admin admin-token-0123456789", "t");
  if (!entries.ok) return t.fail(entries.error);
  const auth = new Authorizer(entries.value, new Set(["read"]));
  t.is(auth.check("Bearer predict-token-0123456789", "predict"), null);
  t.is(auth.check("bearer   admin-token-0123456789", "admin"), null);
  t.is(auth.check(undefined, "read"), null, "anonymous read");
  t.is(auth.check(undefined, "open"), null);
  t.is(auth.check("Bearer nonsense", "open"), null, "open access ignores the token");
  const missing = auth.check(undefined, "predict");
  t.is(missing?.code, status.UNAUTHENTICATED);
  t.is(missing?.headers["www-authenticate"], 'Bearer realm="clipper"');
  t.is(auth.check("Bearer wrong-token-0123456789", "read")?.code, status.UNAUTHENTICATED);
  t.is(auth.check("Basic dXNlcjpwYXNz", "read")?.code, status.UNAUTHENTICATED);
  const denied = auth.check("Bearer predict-token-0123456789", "deploy");
  t.is(denied?.code, status.PERMISSION_DENIED);
  t.regex(denied?.message ?? "", /'deploy' scope/);
  auth.replaceTokens([]);
  t.is(auth.check("Bearer predict-token-0123456789", "predict")?.code, status.UNAUTHENTICATED, "replaced tokens take effect");
});
