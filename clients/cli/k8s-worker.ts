/**
 * The Kubernetes Deployment of one model version's workers, as
 * `clipper k8s manifests` prints it and deploy/kubernetes/templates/
 * shows it: clipper-worker in the operator's model image, its CURVE key
 * from a Secret and the gateway's public key from the base's ConfigMap,
 * both mounted as files, and one DNS name for every gateway (the base's
 * headless Service). Names and labels must obey Kubernetes' rules, so they
 * are checked here, before kubectl would refuse them.
 */
import type { YamlValue } from "./yaml-text.js";

/** What an operator chooses; every other field is fixed by the base. */
export interface WorkerManifestSpec {
  readonly model: string;
  readonly version: string;
  readonly image: string;
  readonly replicas: number;
  /** As the worker's --input-type takes it (already checked). */
  readonly inputType: string;
  /** The model module's path inside the image. */
  readonly module: string;
  /** The Deployment's name; derived from model and version when absent. */
  readonly name?: string;
  readonly namespace?: string;
  /** The headless Service resolving to every gateway pod. */
  readonly gatewayService: string;
  readonly rpcPort: number;
  /** The Secret holding this worker's CURVE secret key as `worker.key`. */
  readonly keySecret: string;
  readonly concurrency: number;
  /** 0: no limit. */
  readonly maxBatchSize: number;
  /** 0: none. */
  readonly modelTimeoutMs: number;
  readonly cpu: string;
  readonly memory: string;
}

/** Defaults shared by the command and the template. */
export const WORKER_MANIFEST_DEFAULTS = {
  module: "/model/model.js",
  gatewayService: "clipper-gateway-workers",
  rpcPort: 7000,
  keySecret: "clipper-worker-key",
  cpu: "500m",
  memory: "512Mi",
} as const;

/** The base's ConfigMap with the gateway's CURVE public key (deploy/kubernetes/kustomization.yaml). */
const GATEWAY_PUBLIC_KEY_CONFIGMAP = "clipper-gateway-public-key";
/** The worker's /metrics, /healthz and /readyz. */
const METRICS_PORT = 9100;

/** A DNS-1123 label: what Deployment, Service and Secret names should be. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A DNS-1123 subdomain (namespaces are labels; Secret names may have dots). */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Kubernetes resource quantities: 500m, 1, 1.5, 512Mi, 2G. */
const QUANTITY = /^\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/;

/** The Deployment name `clipper-worker-<model>-<version>`, lower-cased, other characters as '-'. */
export function defaultWorkerName(model: string, version: string): string {
  return `clipper-worker-${namePart(model)}-${namePart(version)}`;
}

/** `s` as part of a Kubernetes name: lower case, runs of other characters as one '-'. */
function namePart(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
}

/** Why the spec cannot become a valid Deployment, or null when it can. */
export function workerManifestProblem(s: WorkerManifestSpec): string | null {
  if (s.name === undefined) {
    // A part with nothing left would make different models share one Deployment.
    for (const [what, part] of [["model name", s.model], ["version", s.version]] as const) {
      if (namePart(part) === "") return `the ${what} '${part}' has no letter or digit to name a Deployment by; give one with --name`;
    }
  }
  const name = s.name ?? defaultWorkerName(s.model, s.version);
  if (!DNS_LABEL.test(name) || name.length > 63) {
    return `the Deployment name '${name}' is not a Kubernetes name (lower-case letters, digits and '-', at most 63); give one with --name`;
  }
  if (s.namespace !== undefined && (!DNS_LABEL.test(s.namespace) || s.namespace.length > 63)) return `--namespace: '${s.namespace}' is not a Kubernetes namespace name`;
  if (!DNS_LABEL.test(s.gatewayService) || s.gatewayService.length > 63) return `--gateway-service: '${s.gatewayService}' is not a Kubernetes Service name`;
  if (!DNS_SUBDOMAIN.test(s.keySecret) || s.keySecret.length > 253) return `--key-secret: '${s.keySecret}' is not a Kubernetes Secret name`;
  if (s.image.trim() === "" || /\s/.test(s.image)) return `--image: '${s.image}' is not an image reference`;
  if (!s.module.startsWith("/")) return `--module: '${s.module}' must be an absolute path inside the image`;
  if (!QUANTITY.test(s.cpu)) return `--cpu: '${s.cpu}' is not a Kubernetes quantity (e.g. 500m, 2)`;
  if (!QUANTITY.test(s.memory)) return `--memory: '${s.memory}' is not a Kubernetes quantity (e.g. 512Mi, 2Gi)`;
  if (!Number.isInteger(s.rpcPort) || s.rpcPort < 1 || s.rpcPort > 65535) return `--rpc-port: ${s.rpcPort} is not a port`;
  return null;
}

/** The Deployment; call workerManifestProblem first. */
export function workerDeployment(s: WorkerManifestSpec): { [key: string]: YamlValue } {
  const name = s.name ?? defaultWorkerName(s.model, s.version);
  const labels = { "app.kubernetes.io/name": name, "app.kubernetes.io/component": "model-worker", "app.kubernetes.io/part-of": "clipper-ts" };
  // Model names and versions need not be valid label values: annotations carry them exactly.
  const annotations = { "clipper-ts/model": s.model, "clipper-ts/version": s.version };
  const env: { name: string; value: string }[] = [
    { name: "CLIPPER_MODEL_NAME", value: s.model },
    { name: "CLIPPER_MODEL_VERSION", value: s.version },
    { name: "CLIPPER_INPUT_TYPE", value: s.inputType },
    { name: "CLIPPER_MODULE", value: s.module },
    // One name for every gateway pod: the base's headless Service.
    { name: "CLIPPER_GATEWAY", value: `tcp://${s.gatewayService}:${s.rpcPort}` },
    { name: "CLIPPER_WORKER_CURVE_SECRET_KEY", value: "/etc/clipper/curve/worker.key" },
    { name: "CLIPPER_GATEWAY_PUBLIC_KEY", value: "/etc/clipper/gateway-public-key/gateway.pub" },
    { name: "CLIPPER_WORKER_METRICS_PORT", value: String(METRICS_PORT) },
    { name: "CLIPPER_WORKER_METRICS_HOST", value: "0.0.0.0" },
    { name: "CLIPPER_WORKER_CONCURRENCY", value: String(s.concurrency) },
  ];
  if (s.maxBatchSize > 0) env.push({ name: "CLIPPER_MAX_BATCH_SIZE", value: String(s.maxBatchSize) });
  if (s.modelTimeoutMs > 0) env.push({ name: "CLIPPER_MODEL_TIMEOUT_MS", value: String(s.modelTimeoutMs) });
  const probe = (path: string, periodSeconds: number, failureThreshold: number): { [key: string]: YamlValue } => ({
    httpGet: { path, port: "metrics" },
    periodSeconds,
    failureThreshold,
  });
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, ...(s.namespace === undefined ? {} : { namespace: s.namespace }), labels, annotations },
    spec: {
      replicas: s.replicas,
      selector: { matchLabels: { "app.kubernetes.io/name": name } },
      // A new worker registers (ready) before an old one drains: no capacity dip.
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels, annotations },
        spec: {
          automountServiceAccountToken: false,
          // SIGTERM drains: batches in flight finish before the worker exits.
          terminationGracePeriodSeconds: 60,
          securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001, seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: "worker",
              image: s.image,
              command: ["clipper-worker"],
              ports: [{ name: "metrics", containerPort: METRICS_PORT }],
              env,
              // Limits equal to requests: Guaranteed QoS, so the model runs at one
              // steady speed and the gateway's latency model stays right.
              resources: { requests: { cpu: s.cpu, memory: s.memory }, limits: { cpu: s.cpu, memory: s.memory } },
              // Alive once its metrics port answers; ready once registered with a gateway.
              startupProbe: probe("/healthz", 2, 60),
              livenessProbe: probe("/healthz", 10, 3),
              readinessProbe: probe("/readyz", 5, 2),
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
              volumeMounts: [
                { name: "curve", mountPath: "/etc/clipper/curve", readOnly: true },
                { name: "gateway-public-key", mountPath: "/etc/clipper/gateway-public-key", readOnly: true },
                { name: "tmp", mountPath: "/tmp" },
              ],
            },
          ],
          volumes: [
            // 0440: readable through fsGroup, by nobody else.
            { name: "curve", secret: { secretName: s.keySecret, defaultMode: 0o440, items: [{ key: "worker.key", path: "worker.key" }] } },
            { name: "gateway-public-key", configMap: { name: GATEWAY_PUBLIC_KEY_CONFIGMAP } },
            { name: "tmp", emptyDir: { sizeLimit: "64Mi" } },
          ],
        },
      },
    },
  };
}
