/**
 * Scoped tokens on real servers: a gateway and a management on 127.0.0.1
 * with a tokens file, called over gRPC, transcoded HTTP, Clipper REST and
 * /admin/*; and a gateway process that re-reads its tokens on SIGHUP.
 */
import test from "ava";
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { loadServerAuth } from "../../core/auth/server-auth.js";
import { tokenHash } from "../../core/auth/token-file.js";
import { startGateway, type Gateway } from "../../gateway/gateway.js";
import { startManagement, type Management } from "../../management/management.js";
import { eventually, startGatewayProcess, untilReady } from "../helpers/processes.js";
import { TestRedis } from "../helpers/redis-server.js";

const TOKENS = {
  predict: "predict-token-aaaaaaaaaaaa",
  read: "read-token-bbbbbbbbbbbbbbbb",
  admin: "admin-token-cccccccccccccccc",
  deploy: "deploy-token-dddddddddddddd",
  all: "all-scopes-token-eeeeeeeeeeee",
} as const;
type Who = keyof typeof TOKENS | "none";

const silent = pino({ level: "silent" });
let redis: TestRedis;
let dir: string;
let tokensFile: string;
let gateway: Gateway;
let management: Management;

test.before(async () => {
  redis = await TestRedis.start();
  dir = await mkdtemp(join(tmpdir(), "clipper-auth-"));
  tokensFile = join(dir, "tokens");
  await writeFile(
    tokensFile,
    [
      `predict ${TOKENS.predict}`,
      `read ${TOKENS.read}`,
      `admin ${TOKENS.admin}`,
      `deploy ${TOKENS.deploy}`,
      "# the all-scope token is kept only as its hash",
      `predict,read,admin,deploy sha256:${tokenHash(TOKENS.all).toString("hex")}`,
    ].join("\n"),
  );
  const auth = await loadServerAuth({ "auth-tokens": tokensFile, "auth-anonymous": "" });
  if (!auth.ok || auth.value.authorizer === null) throw new Error("auth did not load");
  const authorizer = auth.value.authorizer;
  management = await startManagement({ redisUrl: redis.url, host: "127.0.0.1", grpcPort: 0, httpPort: 0, auth: authorizer }, silent);
  gateway = await startGateway(
    { redisUrl: redis.url, host: "127.0.0.1", grpcPort: 0, httpPort: 0, rpcPort: 0, cacheBytes: 0, queueCapacity: 10, evictionMs: 3_000, auth: authorizer },
    silent,
  );
  // An app to predict against (no model: it answers its default).
  await untilReady(management.httpPort);
  const res = await fetch(`http://127.0.0.1:${management.httpPort}/admin/add_app`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.admin}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "a", input_type: "doubles", default_output: "0", latency_slo_micros: 100_000 }),
  });
  if (res.status !== 200) throw new Error(`add_app: ${res.status} ${await res.text()}`);
  await eventually(async () => gateway.catalog.app("a") !== undefined, 10_000);
});

test.after.always(async () => {
  await gateway?.close(0);
  await management?.close(0);
  await redis?.destroy();
});

const header = (who: Who): Record<string, string> => (who === "none" ? {} : { authorization: `Bearer ${TOKENS[who]}` });

/** A raw unary call with an empty message: enough to see whether the interceptor admits it. */
function grpcCode(port: number, path: string, who: Who): Promise<number> {
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  const md = new Metadata();
  for (const [k, v] of Object.entries(header(who))) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, () => Buffer.alloc(0), (b: Buffer) => b, Buffer.alloc(0), md, { deadline: Date.now() + 5_000 }, (err: ServiceError | null) => {
      client.close();
      resolve(err === null ? status.OK : err.code);
    });
  });
}

async function httpStatus(port: number, method: string, path: string, who: Who, body?: unknown): Promise<{ status: number; challenge: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { ...header(who), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  await res.arrayBuffer();
  return { status: res.status, challenge: res.headers.get("www-authenticate") };
}

/** Each API as a check: the scope it needs, and how to call it as someone. */
interface Api {
  readonly name: string;
  readonly scope: "predict" | "read" | "admin" | "deploy" | "open";
  call(who: Who): Promise<"unauthenticated" | "denied" | "admitted">;
}

function grpcApi(name: string, server: () => number, path: string, scope: Api["scope"]): Api {
  return {
    name: `gRPC ${name}`,
    scope,
    async call(who) {
      const code = await grpcCode(server(), path, who);
      return code === status.UNAUTHENTICATED ? "unauthenticated" : code === status.PERMISSION_DENIED ? "denied" : "admitted";
    },
  };
}

function httpApi(name: string, server: () => number, method: string, path: string, scope: Api["scope"], body?: unknown): Api {
  return {
    name: `HTTP ${name}`,
    scope,
    async call(who) {
      const r = await httpStatus(server(), method, path, who, body);
      if (r.status === 401 && r.challenge === null) throw new Error(`${name}: 401 without WWW-Authenticate`);
      return r.status === 401 ? "unauthenticated" : r.status === 403 ? "denied" : "admitted";
    },
  };
}

const gw = () => gateway.grpcPort;
const gwHttp = () => gateway.httpPort;
const mg = () => management.grpcPort;
const mgHttp = () => management.httpPort;

const APIS: Api[] = [
  grpcApi("Predict", gw, "/clipper.v1.Predict/Predict", "predict"),
  grpcApi("ListWorkers", gw, "/clipper.v1.Heartbeat/ListWorkers", "read"),
  grpcApi("reflection", gw, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "read"),
  grpcApi("health", gw, "/grpc.health.v1.Health/Check", "open"),
  grpcApi("OIP ModelInfer", gw, "/inference.GRPCInferenceService/ModelInfer", "predict"),
  grpcApi("OIP ServerMetadata", gw, "/inference.GRPCInferenceService/ServerMetadata", "read"),
  grpcApi("OIP ModelMetadata", gw, "/inference.GRPCInferenceService/ModelMetadata", "read"),
  grpcApi("OIP ServerLive", gw, "/inference.GRPCInferenceService/ServerLive", "open"),
  grpcApi("OIP ServerReady", gw, "/inference.GRPCInferenceService/ServerReady", "open"),
  grpcApi("OIP ModelReady", gw, "/inference.GRPCInferenceService/ModelReady", "open"),
  grpcApi("Admin.ListApps", mg, "/clipper.v1.Admin/ListApps", "read"),
  grpcApi("Admin.GetApp", mg, "/clipper.v1.Admin/GetApp", "read"),
  grpcApi("Admin.DeleteModelVersion", mg, "/clipper.v1.Admin/DeleteModelVersion", "admin"),
  grpcApi("Admin.SetNumReplicas", mg, "/clipper.v1.Admin/SetNumReplicas", "admin"),
  grpcApi("Admin.DeployModel", mg, "/clipper.v1.Admin/DeployModel", "deploy"),
  grpcApi("management health", mg, "/grpc.health.v1.Health/Check", "open"),
  httpApi("transcoded predict", gwHttp, "POST", "/v1/apps/a:predict", "predict", { input: { doubles: [1] } }),
  httpApi("transcoded ListWorkers", gwHttp, "GET", "/v1/workers", "read"),
  httpApi("Clipper predict", gwHttp, "POST", "/a/predict", "predict", { input: [1] }),
  httpApi("gateway /metrics", gwHttp, "GET", "/metrics", "read"),
  httpApi("OIP POST /v2/models/a/infer", gwHttp, "POST", "/v2/models/a/infer", "predict", { inputs: [{ name: "x", shape: [1], datatype: "FP64", data: [1] }] }),
  httpApi("OIP GET /v2", gwHttp, "GET", "/v2", "read"),
  httpApi("OIP GET /v2/models/a", gwHttp, "GET", "/v2/models/a", "read"),
  httpApi("OIP GET /v2/models/a/versions/1", gwHttp, "GET", "/v2/models/a/versions/1", "read"),
  httpApi("OIP GET /v2/health/live", gwHttp, "GET", "/v2/health/live", "open"),
  httpApi("OIP GET /v2/health/ready", gwHttp, "GET", "/v2/health/ready", "open"),
  httpApi("OIP GET /v2/models/a/ready", gwHttp, "GET", "/v2/models/a/ready", "open"),
  httpApi("gateway /healthz", gwHttp, "GET", "/healthz", "open"),
  httpApi("gateway /readyz", gwHttp, "GET", "/readyz", "open"),
  httpApi("transcoded ListApps", mgHttp, "GET", "/v1/apps", "read"),
  httpApi("transcoded DeployModel", mgHttp, "POST", "/v1/models/p/versions/1:deploy", "deploy", { inputType: "doubles", numReplicas: 1 }),
  httpApi("/admin/get_all_applications", mgHttp, "POST", "/admin/get_all_applications", "read", { verbose: false }),
  httpApi("/admin/add_model", mgHttp, "POST", "/admin/add_model", "admin", { model_name: "m" }),
  httpApi("/admin/ping", mgHttp, "GET", "/admin/ping", "open"),
  httpApi("management /metrics", mgHttp, "GET", "/metrics", "read"),
];

for (const api of APIS) {
  test(`${api.name} admits exactly the '${api.scope}' scope`, async (t) => {
    if (api.scope === "open") {
      t.is(await api.call("none"), "admitted", "no token");
      t.is(await api.call("predict"), "admitted", "any token");
      return;
    }
    t.is(await api.call("none"), "unauthenticated", "no token");
    t.is(await api.call("all"), "admitted", "the all-scope token (kept as a hash)");
    for (const who of ["predict", "read", "admin", "deploy"] as const) {
      t.is(await api.call(who), who === api.scope ? "admitted" : "denied", `a '${who}' token`);
    }
  });
}

test("a malformed or unknown token is 401, not 403", async (t) => {
  const res = await fetch(`http://127.0.0.1:${gateway.httpPort}/metrics`, { headers: { authorization: "Token abc" } });
  t.is(res.status, 401);
  t.is(res.headers.get("www-authenticate"), 'Bearer realm="clipper"');
  const body = (await res.json()) as { code: number; message: string };
  t.is(body.code, status.UNAUTHENTICATED);
  const unknown = await fetch(`http://127.0.0.1:${gateway.httpPort}/metrics`, { headers: { authorization: "Bearer not-a-known-token-123" } });
  t.is(unknown.status, 401);
});

test("OIP REST refusals are the protocol's {\"error\"} body, so tritonclient can read them", async (t) => {
  const res = await fetch(`http://127.0.0.1:${gateway.httpPort}/v2/models/a/infer`, { method: "POST", body: "{}" });
  t.is(res.status, 401);
  t.is(res.headers.get("www-authenticate"), 'Bearer realm="clipper"');
  const body = (await res.json()) as { error: string };
  t.regex(body.error, /needs a token with the 'predict' scope/);
  const denied = await fetch(`http://127.0.0.1:${gateway.httpPort}/v2/models/a`, { headers: header("predict") });
  t.is(denied.status, 403);
  t.regex(((await denied.json()) as { error: string }).error, /lacks the 'read' scope/);
});

test("a gateway process re-reads its tokens on SIGHUP and keeps serving", async (t) => {
  const file = join(dir, "reloaded");
  const first = "first-token-0000000000000";
  const second = "second-token-111111111111";
  await writeFile(file, `read ${first}\n`);
  const g = await startGatewayProcess(redis.url, ["--auth-tokens", file, "--auth-anonymous", "predict"]);
  try {
    const metrics = (token: string) => fetch(`http://127.0.0.1:${g.http}/metrics`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
    t.is(await metrics(first), 200);
    t.is(await metrics(second), 401);
    t.is((await fetch(`http://127.0.0.1:${g.http}/metrics`)).status, 401, "anonymous calls get predict only");
    await writeFile(file, `read ${second}\n`);
    g.proc.child.kill("SIGHUP");
    t.true(await eventually(async () => (await metrics(second)) === 200, 10_000), "the new token is accepted");
    t.is(await metrics(first), 401, "the removed token is refused");
    // A broken file keeps the tokens in force.
    await writeFile(file, "read\n");
    g.proc.child.kill("SIGHUP");
    await g.proc.waitFor(/tokens file not reloaded/);
    t.is(await metrics(second), 200);
  } finally {
    await g.proc.stop();
  }
});

test("bad auth flags stop a server at start with exit 2 and a message naming the flag", async (t) => {
  const bad = join(dir, "bad");
  await writeFile(bad, "everything some-token-000000000000\n");
  for (const [args, message] of [
    [["--auth-tokens", bad], /--auth-tokens: .*unknown scope 'everything'/],
    [["--auth-tokens", join(dir, "missing")], /--auth-tokens: cannot read/],
    [["--auth-anonymous", "predict"], /--auth-anonymous needs --auth-tokens/],
  ] as const) {
    const g = startGatewayProcess(redis.url, args).catch((err: unknown) => err);
    const err = await g;
    t.true(err instanceof Error, `${args.join(" ")} should not start`);
    t.regex(String((err as Error).message), message);
    t.regex(String((err as Error).message), /process exited \(2\)/);
  }
});
