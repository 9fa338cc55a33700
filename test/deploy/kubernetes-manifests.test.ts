/**
 * deploy/kubernetes/ checked without a cluster: every manifest parses and
 * validates against Kubernetes' schemas, the kustomization lists exactly
 * the base's files, every Secret and ConfigMap a workload uses (and every
 * key and mounted path) is generated, Services select pods that exist and
 * name ports they have, probes name real ports, the servers' exposure rule
 * lets the pods start on 0.0.0.0, and `clipper k8s manifests` prints what
 * validates and matches the template.
 */
import test from "ava";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { exposureError } from "../../core/exposure.js";
import { toYaml, type YamlValue } from "../../clients/cli/yaml-text.js";
import {
  BASE_DIR,
  generatedObject,
  mountedKey,
  parseManifests,
  podTemplate,
  readKustomization,
  readManifests,
  validateObject,
  yamlFiles,
  type K8sObject,
} from "../helpers/kubernetes.js";
import { ROOT } from "../helpers/processes.js";

const kustomization = readKustomization();
const base: K8sObject[] = kustomization.resources.flatMap((f) => readManifests(join(BASE_DIR, f)));
const generated = kustomization.generated;

/** `clipper ARGS…` as an operator runs it (bounded). */
function clipper(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["bin/clipper.js", ...args], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr }),
    );
  });
}

const WORKER_ARGS = ["k8s", "manifests", "example", "--version", "1", "--image", "example-model:1", "--replicas", "2"];

test("the kustomization lists exactly the YAML files of the flat base", (t) => {
  t.deepEqual([...kustomization.resources].sort(), yamlFiles(BASE_DIR).filter((f) => f !== "kustomization.yaml"));
  t.is(kustomization.raw.kind, "Kustomization");
  // Generators read only from secrets/, which git ignores.
  for (const g of generated) for (const file of g.files.values()) t.regex(file, /^secrets\/[^/]+$/, `${g.name}: ${file}`);
});

test("every manifest (base, dev, templates) parses and every object validates against Kubernetes' schemas", (t) => {
  const files = [
    ...yamlFiles(BASE_DIR).filter((f) => f !== "kustomization.yaml"),
    ...yamlFiles(join(BASE_DIR, "dev")).map((f) => `dev/${f}`),
    ...yamlFiles(join(BASE_DIR, "templates")).map((f) => `templates/${f}`),
  ];
  t.true(files.length >= 10, files.join(", "));
  let objects = 0;
  for (const file of files) {
    for (const obj of readManifests(join(BASE_DIR, file))) {
      t.notThrows(() => validateObject(obj), file);
      objects++;
    }
  }
  // The generated Secrets and ConfigMaps too, with stand-in contents.
  for (const g of generated) t.notThrows(() => validateObject(generatedObject(g, () => "x")), g.name);
  t.true(objects >= 13, `${objects} objects`);
});

test("the schema check catches what it should: a wrong type, a missing required field, an unknown kind", (t) => {
  const deployment = structuredClone(base.find((o) => o.kind === "Deployment")!);
  deployment.spec.template.spec.containers[0].ports[0].containerPort = "50051";
  t.throws(() => validateObject(deployment), { message: /containerPort must be integer/ });
  const noSelector = structuredClone(base.find((o) => o.kind === "Deployment")!);
  delete noSelector.spec.selector;
  t.throws(() => validateObject(noSelector), { message: /selector/ });
  t.throws(() => validateObject({ apiVersion: "apps/v1", kind: "Deploymnet", metadata: { name: "x" } }), { message: /no schema/ });
});

test("the base has what issue 13 asks: gateway, Services (one headless), HPA, PDB, management with one replica, NetworkPolicies", (t) => {
  const kinds = base.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  for (const k of [
    "Deployment/clipper-gateway",
    "Deployment/clipper-management",
    "Service/clipper-gateway",
    "Service/clipper-gateway-workers",
    "Service/clipper-management",
    "HorizontalPodAutoscaler/clipper-gateway",
    "PodDisruptionBudget/clipper-gateway",
    "NetworkPolicy/clipper-gateway",
  ]) {
    t.true(kinds.includes(k), k);
  }
  const management = base.find((o) => o.kind === "Deployment" && o.metadata.name === "clipper-management")!;
  t.is(management.spec.replicas, 1);
  // No replica manager: management must not start processes in its pod.
  const env = management.spec.template.spec.containers[0].env as { name: string }[];
  t.false(env.some((e) => e.name === "CLIPPER_MANAGEMENT_GATEWAY_RPC"));
  const headless = base.find((o) => o.metadata.name === "clipper-gateway-workers")!;
  t.is(headless.spec.clusterIP, "None");
  const hpa = base.find((o) => o.kind === "HorizontalPodAutoscaler")!;
  t.like(hpa.spec.scaleTargetRef, { kind: "Deployment", name: "clipper-gateway" });
  t.is(hpa.spec.metrics[0].resource.name, "cpu");
  // The HPA owns the gateway's count.
  t.is(base.find((o) => o.metadata.name === "clipper-gateway" && o.kind === "Deployment")!.spec.replicas, undefined);
});

/** Every workload of the base, the template and the CLI's output, by where it comes from. */
let cliWorker: Promise<{ code: number; stdout: string; stderr: string }> | undefined;
async function workloads(): Promise<[string, K8sObject][]> {
  const cli = await (cliWorker ??= clipper(WORKER_ARGS));
  if (cli.code !== 0) throw new Error(cli.stderr);
  return [
    ...base.filter((o) => podTemplate(o) !== null).map((o): [string, K8sObject] => [`base ${o.metadata.name}`, o]),
    ...readManifests(join(BASE_DIR, "templates/model-worker.yaml")).map((o): [string, K8sObject] => ["template", o]),
    ...parseManifests(cli.stdout, "clipper k8s manifests").map((o): [string, K8sObject] => ["clipper k8s manifests", o]),
  ];
}

test("every Secret and ConfigMap a workload uses is generated by the base, with the keys it reads, and secrets reach containers only as files", async (t) => {
  const find = (kind: string, name: string) => generated.find((g) => g.kind === kind && g.name === name);
  let checked = 0;
  for (const [where, obj] of await workloads()) {
    const pod = podTemplate(obj)!;
    for (const v of pod.spec.volumes ?? []) {
      const ref = v.secret !== undefined ? { kind: "Secret", name: v.secret.secretName, items: v.secret.items } : v.configMap !== undefined ? { kind: "ConfigMap", name: v.configMap.name, items: v.configMap.items } : null;
      if (ref === null) continue;
      const g = find(ref.kind, ref.name);
      t.truthy(g, `${where}: volume ${v.name} needs ${ref.kind} ${ref.name}`);
      for (const item of (ref.items ?? []) as { key: string }[]) t.true(g?.files.has(item.key), `${where}: ${ref.name} has no key ${item.key}`);
      checked++;
    }
    for (const c of pod.spec.containers) {
      for (const e of c.env ?? []) {
        if (e.valueFrom?.secretKeyRef !== undefined) {
          // The one secret passed in the environment: the Redis URL (the servers read no URL file).
          t.is(e.name, "CLIPPER_REDIS_URL", `${where}: ${e.name} comes from a Secret through the environment`);
          t.true(find("Secret", e.valueFrom.secretKeyRef.name)?.files.has(e.valueFrom.secretKeyRef.key), `${where}: ${e.name}`);
          checked++;
        }
        if (typeof e.value === "string" && e.value.startsWith("/etc/")) {
          // A path the server reads must be a key of the Secret/ConfigMap mounted there.
          const mounted = mountedKey(pod, c, e.value);
          t.truthy(mounted, `${where}: ${e.name}=${e.value} is under no mount`);
          if (mounted !== null) t.true(find(mounted.kind, mounted.name)?.files.has(mounted.key), `${where}: ${e.name}=${e.value}: ${mounted.name} has no key ${mounted.key}`);
          checked++;
        }
        t.false(/KEY$|TOKEN$|PASSWORD/.test(e.name) && typeof e.value === "string" && !e.value.startsWith("/"), `${where}: ${e.name} holds a secret value`);
      }
    }
  }
  t.true(checked >= 12, `${checked} references checked`);
});

test("Services select the pods of a workload and name ports those pods have; NetworkPolicies name real ports", async (t) => {
  const all = await workloads();
  const pods = all.map(([, o]) => podTemplate(o)!);
  const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);
  const portsOf = (pod: (typeof pods)[number]): { name?: string; containerPort: number }[] => pod.spec.containers.flatMap((c: { ports?: [] }) => c.ports ?? []);
  const dev = readManifests(join(BASE_DIR, "dev/redis.yaml"));
  const devPods = dev.map(podTemplate).filter((p) => p !== null);
  for (const svc of [...base, ...dev].filter((o) => o.kind === "Service")) {
    const matched = [...pods, ...devPods].filter((p) => selects(svc.spec.selector, p!.metadata.labels));
    t.true(matched.length > 0, `Service ${svc.metadata.name} selects no pod`);
    for (const port of svc.spec.ports) {
      for (const p of matched) {
        const ok = typeof port.targetPort === "string" ? portsOf(p!).some((cp) => cp.name === port.targetPort) : portsOf(p!).some((cp) => cp.containerPort === (port.targetPort ?? port.port));
        t.true(ok, `Service ${svc.metadata.name} port ${port.name} → ${port.targetPort}`);
      }
    }
  }
  for (const policy of base.filter((o) => o.kind === "NetworkPolicy")) {
    const targets = pods.filter((p) => selects(policy.spec.podSelector.matchLabels ?? {}, p.metadata.labels));
    t.true(targets.length > 0, `NetworkPolicy ${policy.metadata.name} selects no pod`);
    for (const rule of policy.spec.ingress ?? []) {
      for (const port of rule.ports ?? []) for (const p of targets) t.true(typeof port.port !== "string" || portsOf(p).some((cp) => cp.name === port.port), `${policy.metadata.name}: ${port.port}`);
    }
  }
});

test("only model workers may reach the gateways' worker port, and workers reach only the gateways and DNS", async (t) => {
  const gatewayPolicy = base.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "clipper-gateway")!;
  const rules = gatewayPolicy.spec.ingress as { from?: { podSelector: { matchLabels: Record<string, string> } }[]; ports: { port: string }[] }[];
  const workerRules = rules.filter((r) => r.ports.some((p) => p.port === "worker-rpc"));
  t.is(workerRules.length, 1);
  t.deepEqual(workerRules[0]!.from, [{ podSelector: { matchLabels: { "app.kubernetes.io/component": "model-worker" } } }]);
  t.deepEqual(workerRules[0]!.ports, [{ port: "worker-rpc" }]);
  // Every model worker carries the label the policy admits.
  for (const [where, obj] of (await workloads()).filter(([w]) => !w.startsWith("base"))) t.is(podTemplate(obj)!.metadata.labels["app.kubernetes.io/component"], "model-worker", where);
  const workerPolicy = base.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "clipper-model-workers")!;
  t.deepEqual(workerPolicy.spec.policyTypes, ["Ingress", "Egress"]);
  t.is(workerPolicy.spec.egress.length, 2);
});

test("probes hit /healthz and /readyz on a port the container declares, over HTTPS exactly where the server runs TLS", async (t) => {
  let probes = 0;
  for (const [where, obj] of await workloads()) {
    for (const c of podTemplate(obj)!.spec.containers) {
      const tls = (c.env ?? []).some((e: { name: string }) => e.name === "CLIPPER_TLS_CERT");
      for (const kind of ["startupProbe", "livenessProbe", "readinessProbe"]) {
        const probe = c[kind]?.httpGet;
        t.truthy(probe, `${where} ${c.name}: no ${kind}`);
        if (probe === undefined) continue;
        t.is(probe.path, kind === "readinessProbe" ? "/readyz" : "/healthz", `${where} ${kind}`);
        t.true((c.ports as { name: string }[]).some((p) => p.name === probe.port), `${where} ${kind}: port ${probe.port}`);
        t.is(probe.scheme ?? "HTTP", tls ? "HTTPS" : "HTTP", `${where} ${kind}`);
        probes++;
      }
      t.truthy(c.resources?.requests?.cpu, `${where}: cpu request`);
      t.truthy(c.resources?.limits?.memory, `${where}: memory limit`);
    }
  }
  t.is(probes, 3 * 4);
});

test("the servers may start on 0.0.0.0 as the base configures them: TLS, tokens and CURVE are on (core/exposure.ts)", (t) => {
  for (const name of ["clipper-gateway", "clipper-management"]) {
    const c = base.find((o) => o.kind === "Deployment" && o.metadata.name === name)!.spec.template.spec.containers[0];
    const env = new Map((c.env as { name: string; value?: string }[]).map((e) => [e.name, e.value ?? "(from a Secret)"]));
    t.is(env.get("CLIPPER_HOST"), "0.0.0.0");
    t.false(env.has("CLIPPER_INSECURE"), name);
    const gateway = name === "clipper-gateway";
    const protection = {
      tls: env.has("CLIPPER_TLS_CERT") && env.has("CLIPPER_TLS_KEY"),
      tokens: env.has("CLIPPER_AUTH_TOKENS"),
      workerPort: gateway ? env.has("CLIPPER_GATEWAY_CURVE_SECRET_KEY") && env.has("CLIPPER_WORKER_KEYS") : ("none" as const),
    };
    t.is(exposureError(env.get("CLIPPER_HOST")!, protection, false), null, name);
    // And the rule does bite: without the tokens file it would refuse to start.
    t.regex(exposureError("0.0.0.0", { ...protection, tokens: false }, false) ?? "", /tokens/);
  }
});

test("clipper k8s manifests prints the template's Deployment, which validates; --json prints the same object", async (t) => {
  const yaml = await clipper(WORKER_ARGS);
  t.is(yaml.code, 0, yaml.stderr);
  const [printed] = parseManifests(yaml.stdout, "clipper k8s manifests");
  t.notThrows(() => validateObject(printed!));
  t.deepEqual(printed, readManifests(join(BASE_DIR, "templates/model-worker.yaml"))[0]);
  const json = await clipper([...WORKER_ARGS, "--json"]);
  t.deepEqual(JSON.parse(json.stdout), printed);
});

test("clipper k8s manifests carries every option into a Deployment that validates", async (t) => {
  const r = await clipper([
    "k8s", "manifests", "Fraud_Model", "--version", "2024.1", "--image", "registry.example/fraud:2024.1", "--replicas", "3",
    "--input-type", "strings", "--namespace", "ml", "--gateway-service", "gw-workers", "--rpc-port", "7100", "--key-secret", "fraud-key",
    "--module", "/srv/fraud.mjs", "--concurrency", "2", "--max-batch-size", "64", "--model-timeout-ms", "5000", "--cpu", "2", "--memory", "1Gi",
  ]);
  t.is(r.code, 0, r.stderr);
  const [d] = parseManifests(r.stdout, "clipper k8s manifests");
  t.notThrows(() => validateObject(d!));
  t.like(d!.metadata, { name: "clipper-worker-fraud-model-2024-1", namespace: "ml", annotations: { "clipper-ts/model": "Fraud_Model", "clipper-ts/version": "2024.1" } });
  t.is(d!.spec.replicas, 3);
  const c = d!.spec.template.spec.containers[0];
  const env = Object.fromEntries((c.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
  t.like(env, {
    CLIPPER_MODEL_NAME: "Fraud_Model",
    CLIPPER_MODEL_VERSION: "2024.1",
    CLIPPER_INPUT_TYPE: "strings",
    CLIPPER_MODULE: "/srv/fraud.mjs",
    CLIPPER_GATEWAY: "tcp://gw-workers:7100",
    CLIPPER_WORKER_CONCURRENCY: "2",
    CLIPPER_MAX_BATCH_SIZE: "64",
    CLIPPER_MODEL_TIMEOUT_MS: "5000",
  });
  t.deepEqual(c.resources, { requests: { cpu: "2", memory: "1Gi" }, limits: { cpu: "2", memory: "1Gi" } });
  t.is(d!.spec.template.spec.volumes[0].secret.secretName, "fraud-key");
});

test("clipper k8s manifests refuses what Kubernetes or the worker would refuse, with exit 2 and the flag's name", async (t) => {
  const cases: [string[], RegExp][] = [
    [["k8s", "manifests", "m", "--image", "i"], /--version is required/],
    [["k8s", "manifests", "m", "--version", "1"], /--image is required/],
    [["k8s", "manifests", "m", "--version", "1", "--image", "i", "--input-type", "tensor"], /--input-type: 'tensor' is not a valid input type/],
    [["k8s", "manifests", "m", "--version", "1", "--image", "i", "--replicas", "-1"], /--replicas/],
    [["k8s", "manifests", "m", "--version", "1", "--image", "i", "--namespace", "Bad_NS"], /--namespace/],
    [["k8s", "manifests", "m", "--version", "1", "--image", "i", "--memory", "lots"], /--memory/],
    [["k8s", "manifests", "m", "--version", "1", "--image", "i", "--module", "model.js"], /--module: 'model.js' must be an absolute path/],
    [["k8s", "manifests", "€€€", "--version", "1", "--image", "i"], /--name/],
    [["k8s", "manifests", "m", "--version", "1", "--image", "i", "--name", "x".repeat(64)], /at most 63/],
  ];
  for (const [args, message] of cases) {
    const r = await clipper(args);
    t.is(r.code, 2, args.join(" "));
    t.regex(r.stderr, message, args.join(" "));
    t.is(r.stdout, "", args.join(" "));
  }
});

test("the YAML writer's output reads back as the same value, for strings YAML would take for something else", (t) => {
  const tricky = ["", "1", "0.5", "1e3", "0x1F", "0o17", "017", "true", "False", "yes", "on", "OFF", "y", "N", "null", "~", "-", "- a", "a: b", "a:", "#x", "x #y", "@a", "`a", "'q'", '"q"', "[a]", "{a}", "*a", "&a", "!a", "%a", "|", ">", "a\nb", " lead", "trail ", "tab\t", "é", "😀", "\u2028", ".inf", ".5", "1:20", "<<"];
  const value: { [k: string]: YamlValue } = {
    strings: tricky,
    keys: Object.fromEntries(tricky.filter((s) => s !== "<<").map((s, i) => [s, i])),
    nested: { list: [{ a: 1, b: [true, null, 2.5] }, [], {}, ["x", ["y"]]], empty: {}, none: [] },
    image: "registry.example:5000/team/model:1.2",
  };
  const text = toYaml(value);
  t.deepEqual(parseYaml(text, { version: "1.2" }), value);
  // kubectl reads YAML 1.1: the same text must mean the same there.
  t.deepEqual(parseYaml(text, { version: "1.1" }), value);
});
