/** `clipper k8s manifests`: a model version's worker Deployment, to pipe into `kubectl apply -f -`. */
import { parseInputType, unknownInputTypeMessage } from "../../../core/input-types.js";
import { intOption, strOption, usageError, type Command } from "../cli-kit.js";
import { WORKER_MANIFEST_DEFAULTS as D, workerDeployment, workerManifestProblem, type WorkerManifestSpec } from "../k8s-worker.js";
import { toYaml } from "../yaml-text.js";

export const k8sCommands: readonly Command[] = [
  {
    name: "k8s manifests",
    args: "MODEL",
    summary: "Prints the Kubernetes Deployment of a model version's workers (YAML; --json for JSON), for kubectl apply -f -.",
    details: [
      "The workers run clipper-worker from --image, which must hold clipper-ts and the model module (--module).",
      "They reach every gateway through the base's headless Service (deploy/kubernetes), present the CURVE key in",
      "Secret --key-secret (key worker.key; its public key must be in the gateway's worker-keys) and read the",
      "gateway's public key from ConfigMap clipper-gateway-public-key. Nothing is sent to a cluster or to Redis:",
      "register the version too (clipper models register MODEL --version V --input-type T).",
      "Example: clipper k8s manifests fraud --version 3 --image registry.example/fraud:3 --replicas 2 | kubectl apply -f -",
    ].join("\n"),
    options: {
      version: { type: "string", value: "V", help: "model version (required)" },
      image: { type: "string", value: "IMG", help: "container image with clipper-ts and the model (required)" },
      replicas: { type: "string", value: "N", help: "worker pods (default 1)" },
      "input-type": { type: "string", value: "T", help: "bytes, integers, floats, doubles or strings (default doubles)" },
      module: { type: "string", value: "PATH", help: `the model module inside the image (default ${D.module})` },
      name: { type: "string", value: "NAME", help: "Deployment name (default clipper-worker-MODEL-VERSION, lower-cased)" },
      namespace: { type: "string", value: "NS", help: "namespace of the Deployment (default: kubectl's)" },
      "gateway-service": { type: "string", value: "NAME", help: `headless Service of the gateways' worker port (default ${D.gatewayService})` },
      "rpc-port": { type: "string", value: "PORT", help: `the gateways' worker port (default ${D.rpcPort})` },
      "key-secret": { type: "string", value: "NAME", help: `Secret with the workers' CURVE secret key as worker.key (default ${D.keySecret})` },
      concurrency: { type: "string", value: "N", help: "batches one worker runs at once (default 1)" },
      "max-batch-size": { type: "string", value: "N", help: "largest batch the model takes (default 0: no limit)" },
      "model-timeout-ms": { type: "string", value: "MS", help: "model-call timeout (default 0: none)" },
      cpu: { type: "string", value: "Q", help: `CPU request and limit of a worker pod (default ${D.cpu})` },
      memory: { type: "string", value: "Q", help: `memory request and limit of a worker pod (default ${D.memory})` },
    },
    minArgs: 1,
    maxArgs: 1,
    async run({ positionals, values, out }) {
      const version = strOption(values, "version");
      const image = strOption(values, "image");
      if (version === "") throw usageError("--version is required");
      if (image === "") throw usageError("--image is required");
      const inputType = strOption(values, "input-type", "doubles");
      if (parseInputType(inputType) === null) throw usageError(`--input-type: ${unknownInputTypeMessage(inputType)}`);
      const name = strOption(values, "name");
      const namespace = strOption(values, "namespace");
      const spec: WorkerManifestSpec = {
        model: positionals[0]!,
        version,
        image,
        replicas: intOption(values, "replicas", 1),
        inputType,
        module: strOption(values, "module", D.module),
        ...(name === "" ? {} : { name }),
        ...(namespace === "" ? {} : { namespace }),
        gatewayService: strOption(values, "gateway-service", D.gatewayService),
        rpcPort: intOption(values, "rpc-port", D.rpcPort, 1),
        keySecret: strOption(values, "key-secret", D.keySecret),
        concurrency: intOption(values, "concurrency", 1, 1),
        maxBatchSize: intOption(values, "max-batch-size", 0),
        modelTimeoutMs: intOption(values, "model-timeout-ms", 0),
        cpu: strOption(values, "cpu", D.cpu),
        memory: strOption(values, "memory", D.memory),
      };
      const problem = workerManifestProblem(spec);
      if (problem !== null) throw usageError(problem);
      const deployment = workerDeployment(spec);
      // The comment names no argument: text from the command line stays inside quoted scalars.
      out.result(deployment, () => `# Rendered by clipper k8s manifests: the workers of one model version\n${toYaml(deployment)}`);
    },
  },
];
