/**
 * The base's pods, run as processes on this machine: deploy/kubernetes/
 * make-secrets.sh writes the Secret files, then the gateway, management and
 * a worker from `clipper k8s manifests` start with exactly the environment
 * their containers get (mounted paths mapped to those files, the Redis URL
 * read from its Secret file), except that they bind 127.0.0.1 and pick free
 * ports. Their probes answer over the scheme the manifests use, the worker
 * registers over CURVE with the generated keys, and a call made with the
 * generated token over TLS is answered by the model.
 */
import test from "ava";
import { execFile, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { GATEWAY_PORTS_LINE, MANAGEMENT_PORTS_LINE, WORKER_PORTS_LINE } from "../../core/ports-line.js";
import { BASE_DIR, mountedKey, parseManifests, podTemplate, readKustomization, readManifests, validateObject, yamlFiles, type K8sObject } from "../helpers/kubernetes.js";
import { eventually, ROOT, spawnBin, type Proc } from "../helpers/processes.js";
import { TestRedis } from "../helpers/redis-server.js";

const SUM = join(ROOT, "test/fixtures/models/sum.js");
const secrets = mkdtempSync(join(tmpdir(), "clipper-k8s-secrets-"));
const kustomization = readKustomization();
const procs: Proc[] = [];
let redis: TestRedis;

function run(file: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: ROOT, timeout: 60_000, env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr }),
    );
  });
}

/** Where a generated Secret's or ConfigMap's key lives here: its source file, in the secrets dir. */
function sourceFile(kind: string, name: string, key: string): string {
  const file = kustomization.generated.find((g) => g.kind === kind && g.name === name)?.files.get(key);
  if (file === undefined) throw new Error(`no ${kind} ${name} key ${key} in kustomization.yaml`);
  return join(secrets, basename(file));
}

/** The environment a container of `obj` gets, with mounted paths turned into the files here. */
function containerEnv(obj: K8sObject): { command: string; env: NodeJS.ProcessEnv } {
  const pod = podTemplate(obj)!;
  const c = pod.spec.containers[0];
  const env: NodeJS.ProcessEnv = {};
  for (const e of c.env as { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[]) {
    if (e.valueFrom !== undefined) {
      env[e.name] = readFileSync(sourceFile("Secret", e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key), "utf8");
      continue;
    }
    const mounted = e.value!.startsWith("/etc/") ? mountedKey(pod, c, e.value!) : null;
    env[e.name] = mounted === null ? e.value! : sourceFile(mounted.kind, mounted.name, mounted.key);
  }
  // Pods bind every interface; a test binds loopback only.
  if (env.CLIPPER_HOST !== undefined) env.CLIPPER_HOST = "127.0.0.1";
  return { command: c.command[0], env };
}

/** A probe as the kubelet sends it: HTTPS without checking the certificate, or plain HTTP. */
function probe(scheme: string, port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = (scheme === "HTTPS" ? httpsRequest : httpRequest)({ host: "127.0.0.1", port, path, rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", () => resolve(0));
    req.end();
  });
}

/** A JSON call over HTTPS trusting the generated certificate, with the generated token. */
function call(port: number, method: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const token = readFileSync(join(secrets, "token"), "utf8").trim();
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: "127.0.0.1", port, path, method, ca: readFileSync(join(secrets, "tls.crt")), headers: { "content-type": "application/json", authorization: `Bearer ${token}` } },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text === "" ? null : JSON.parse(text) }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

const deployment = (name: string): K8sObject => readManifests(join(BASE_DIR, `${name}-deployment.yaml`))[0]!;
const probeOf = (obj: K8sObject, kind: string): { path: string; scheme?: string } => podTemplate(obj)!.spec.containers[0][kind].httpGet;

test.before(async () => {
  redis = await TestRedis.start({ password: "k8s-test-password" });
  const made = await run("bash", [join(BASE_DIR, "make-secrets.sh"), redis.url, "clipper"], { SECRETS_DIR: secrets });
  if (made.code !== 0) throw new Error(`make-secrets.sh failed: ${made.stderr}`);
});

test.after.always(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await redis?.stop();
  rmSync(secrets, { recursive: true, force: true });
});

test.serial("make-secrets.sh writes every file the kustomization's generators read, keeps them on a second run, and hashes the token", async (t) => {
  for (const g of kustomization.generated) for (const key of g.files.keys()) t.notThrows(() => readFileSync(sourceFile(g.kind, g.name, key)), `${g.name}/${key}`);
  const before = readFileSync(join(secrets, "gateway.key"), "utf8");
  const again = await run("bash", [join(BASE_DIR, "make-secrets.sh"), "redis://other:6379"], { SECRETS_DIR: secrets });
  t.is(again.code, 0, again.stderr);
  t.is(readFileSync(join(secrets, "gateway.key"), "utf8"), before);
  t.is(readFileSync(join(secrets, "redis-url"), "utf8"), redis.url);
  t.false(readFileSync(join(secrets, "tokens"), "utf8").includes(readFileSync(join(secrets, "token"), "utf8").trim()));
});

test.serial("gateway, management and a rendered worker start with the manifests' environment; probes pass; a call with the token is answered", async (t) => {
  const gw = containerEnv(deployment("gateway"));
  const gateway = spawnBin(gw.command, ["--grpc-port", "0", "--http-port", "0", "--rpc-port", "0"], gw.env);
  procs.push(gateway);
  const gp = GATEWAY_PORTS_LINE.read(await gateway.waitFor(GATEWAY_PORTS_LINE.pattern));

  const mg = containerEnv(deployment("management"));
  const management = spawnBin(mg.command, ["--grpc-port", "0", "--http-port", "0"], mg.env);
  procs.push(management);
  const mp = MANAGEMENT_PORTS_LINE.read(await management.waitFor(MANAGEMENT_PORTS_LINE.pattern));

  for (const [obj, port] of [[deployment("gateway"), gp.http.port], [deployment("management"), mp.http.port]] as const) {
    for (const kind of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      const p = probeOf(obj, kind);
      t.true(await eventually(async () => (await probe(p.scheme ?? "HTTP", port, p.path)) === 200), `${obj.metadata.name} ${kind}`);
    }
    // A plaintext probe would not do: the port speaks TLS.
    t.not(await probe("HTTP", port, "/healthz"), 200);
  }

  t.is((await call(mp.http.port, "POST", "/v1/apps", { name: "k8s-app", inputType: "doubles", defaultOutput: "-1", latencySloMicros: 5_000_000 })).status, 200);
  t.is((await call(mp.http.port, "POST", "/v1/models", { name: "sum", version: "1", inputType: "doubles" })).status, 200);
  t.is((await call(mp.http.port, "POST", "/v1/apps/k8s-app/links/sum", {})).status, 200);

  const rendered = await run(process.execPath, ["bin/clipper.js", "k8s", "manifests", "sum", "--version", "1", "--image", "x", "--module", SUM]);
  t.is(rendered.code, 0, rendered.stderr);
  const workerObj = parseManifests(rendered.stdout, "clipper k8s manifests")[0]!;
  const wk = containerEnv(workerObj);
  // The headless Service's name does not resolve here: the one gateway's address stands for it.
  t.is(wk.env.CLIPPER_GATEWAY, "tcp://clipper-gateway-workers:7000");
  wk.env.CLIPPER_GATEWAY = `tcp://127.0.0.1:${gp.rpc.port}`;
  wk.env.CLIPPER_WORKER_METRICS_HOST = "127.0.0.1";
  wk.env.CLIPPER_WORKER_METRICS_PORT = "0";
  const worker = spawnBin(wk.command, [], { ...wk.env, CLIPPER_LOG_LEVEL: "info" });
  procs.push(worker);
  const metricsPort = WORKER_PORTS_LINE.read(await worker.waitFor(WORKER_PORTS_LINE.pattern)).metrics.port;
  await worker.waitFor(/worker registered/);
  for (const kind of ["startupProbe", "livenessProbe", "readinessProbe"]) {
    const p = probeOf(workerObj, kind);
    t.true(await eventually(async () => (await probe(p.scheme ?? "HTTP", metricsPort, p.path)) === 200), `worker ${kind}`);
  }

  let answer: { status: number; body: any } = { status: 0, body: null };
  t.true(
    await eventually(async () => {
      answer = await call(gp.http.port, "POST", "/v1/apps/k8s-app:predict", { input: { doubles: [1, 2, 3] } });
      return answer.status === 200 && answer.body.default === false;
    }),
    JSON.stringify(answer),
  );
  t.is(answer.body.output, "6");
  // Without the token the gateway refuses: the tokens file is in force.
  const anonymous = await new Promise<number>((resolve) => {
    const req = httpsRequest({ host: "127.0.0.1", port: gp.http.port, path: "/v1/apps/k8s-app:predict", method: "POST", rejectUnauthorized: false, headers: { "content-type": "application/json" } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.end(JSON.stringify({ input: { doubles: [1] } }));
  });
  t.is(anonymous, 401);
});

/** kubectl with its built-in kustomize, when this machine has one (it is not installed by the project). */
const kubectl = spawnSync("kubectl", ["version", "--client", "-o", "json"], { encoding: "utf8" });
const kustomizeVersion: string | undefined = kubectl.status === 0 ? (JSON.parse(kubectl.stdout) as { kustomizeVersion?: string }).kustomizeVersion : undefined;

(kustomizeVersion === undefined ? test.skip : test.serial)(`kubectl kustomize builds the base with make-secrets.sh's files: the manifests unchanged, the generated objects under their fixed names (kustomize ${kustomizeVersion ?? "absent"})`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "clipper-k8s-base-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of yamlFiles(BASE_DIR)) cpSync(join(BASE_DIR, f), join(dir, f));
  cpSync(secrets, join(dir, "secrets"), { recursive: true });
  const built = await run("kubectl", ["kustomize", dir]);
  t.is(built.code, 0, built.stderr);
  const objects = parseManifests(built.stdout, "kubectl kustomize");
  const key = (o: K8sObject): string => `${o.kind}/${o.metadata.name}`;
  const manifests = kustomization.resources.flatMap((f) => readManifests(join(BASE_DIR, f)));
  t.deepEqual(objects.map(key).sort(), [...manifests.map(key), ...kustomization.generated.map((g) => `${g.kind}/${g.name}`)].sort());
  for (const m of manifests) t.deepEqual(objects.find((o) => key(o) === key(m)), m, key(m));
  for (const g of kustomization.generated) {
    const o = objects.find((x) => key(x) === `${g.kind}/${g.name}`)!;
    t.deepEqual(Object.keys(o.data).sort(), [...g.files.keys()].sort(), g.name);
    if (g.type !== undefined) t.is(o.type, g.type);
  }
  for (const o of objects) {
    // kustomize folds long base64 values over lines, which the API server's
    // decoder skips and kubernetes-models' "byte" format does not.
    const unfolded = o.kind === "Secret" ? { ...o, data: Object.fromEntries(Object.entries(o.data as Record<string, string>).map(([k, v]) => [k, v.replace(/\s/g, "")])) } : o;
    t.notThrows(() => validateObject(unfolded), key(o));
  }
  // The Secret holds exactly the file make-secrets.sh wrote.
  const redisSecret = objects.find((o) => key(o) === "Secret/clipper-redis")!;
  t.is(Buffer.from(redisSecret.data.url, "base64").toString(), redis.url);
});
