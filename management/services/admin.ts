import {
  AdminService,
  type App,
  type CreateAppRequest,
  type CreateAppResponse,
  type DeployModelRequest,
  type DeployModelResponse,
  type Deployment,
  type ListDeploymentsRequest,
  type ListDeploymentsResponse,
  type SetNumReplicasRequest,
  type DeleteAppRequest,
  type DeleteAppResponse,
  type DeleteModelVersionRequest,
  type DeleteModelVersionResponse,
  type GetAppRequest,
  type GetAppResponse,
  type GetModelRequest,
  type GetModelResponse,
  type GetReplicaRequest,
  type GetReplicaResponse,
  type GetSelectionStateRequest,
  type GetSelectionStateResponse,
  type LinkModelRequest,
  type LinkModelResponse,
  type ListAppsResponse,
  type ListModelsRequest,
  type ListModelsResponse,
  type ListReplicasRequest,
  type ListReplicasResponse,
  type Model,
  type RegisterModelRequest,
  type RegisterModelResponse,
  type Replica,
  type SetModelVersionRequest,
  type SetModelVersionResponse,
  type SetNumReplicasResponse,
  type UnlinkModelRequest,
  type UnlinkModelResponse,
} from "../../gen/clipper/v1/admin.js";
import { status as Status } from "@grpc/grpc-js";
import { notFound, ServingError } from "../../core/errors.js";
import { ADAPTIVE_BATCH_SIZE, modelId } from "../../core/redis-layout.js";
import type { UnaryServiceBinding } from "../../core/service-binding.js";
import type { CallContext } from "../../core/call-context.js";
import type { AdminStore, AppView, ModelView, ReplicaView } from "../admin-store.js";
import type { DeploymentView, ReplicaManager } from "../replica-manager.js";

/** Full protobuf name of the Admin service. */
export const ADMIN_SERVICE_NAME = "clipper.v1.Admin";

/**
 * clipper.v1.Admin over an AdminStore: maps protobuf messages to store
 * calls and back. Served unchanged over gRPC and transcoded HTTP.
 */
export function adminBinding(store: AdminStore, manager: ReplicaManager | null = null): UnaryServiceBinding {
  const requireManager = (): ReplicaManager => {
    if (manager !== null) return manager;
    throw new ServingError(
      Status.FAILED_PRECONDITION,
      "NO_REPLICA_MANAGER",
      "this management server runs without a replica manager: start it with --gateway-rpc tcp://HOST:PORT (as clipper up does), or start workers with clipper-worker (or your orchestrator) instead",
    );
  };
  return {
    name: ADMIN_SERVICE_NAME,
    definition: AdminService,
    handlers: {
      createApp: async (req: CreateAppRequest): Promise<CreateAppResponse> => ({ app: toApp(await store.createApp(req), 0) }),
      getApp: async (req: GetAppRequest): Promise<GetAppResponse> => ({ app: (await withReadiness(store, [await store.requireApp(req.name)]))[0] }),
      listApps: async (): Promise<ListAppsResponse> => ({ apps: await withReadiness(store, await store.listApps()) }),
      deleteApp: async (req: DeleteAppRequest): Promise<DeleteAppResponse> => {
        await store.deleteApp(req.name);
        return {};
      },
      registerModel: async (req: RegisterModelRequest): Promise<RegisterModelResponse> => ({
        // proto3 cannot tell 0 from unset: 0 means adaptive here.
        model: toModel(
          await store.registerModel({ ...req, batchSize: req.batchSize === 0 ? ADAPTIVE_BATCH_SIZE : req.batchSize, policy: { cache: !req.noCache, coalesce: !req.noCoalesce } }),
        ),
      }),
      getModel: async (req: GetModelRequest): Promise<GetModelResponse> => ({
        model: toModel(await store.requireModel(req.name, req.version)),
      }),
      listModels: async (req: ListModelsRequest): Promise<ListModelsResponse> => ({
        models: (await store.listModels(req.name)).map(toModel),
      }),
      setModelVersion: async (req: SetModelVersionRequest, ctx: CallContext): Promise<SetModelVersionResponse> => ({
        // With a replica manager, a version it runs is brought up before the switch.
        model: toModel(manager !== null ? await manager.setVersion(req.name, req.version, ctx) : await store.setModelVersion(req.name, req.version)),
      }),
      deleteModelVersion: async (req: DeleteModelVersionRequest): Promise<DeleteModelVersionResponse> => {
        await store.deleteModelVersion(req.name, req.version);
        // Its workers would only be drained by the gateway and restarted by the manager.
        await manager?.forget(req.name, req.version);
        return {};
      },
      linkModel: async (req: LinkModelRequest): Promise<LinkModelResponse> => ({
        app: (await withReadiness(store, [await store.linkModels(req.app, [req.model])]))[0],
      }),
      unlinkModel: async (req: UnlinkModelRequest): Promise<UnlinkModelResponse> => ({
        app: (await withReadiness(store, [await store.unlinkModels(req.app, [req.model])]))[0],
      }),
      listReplicas: async (req: ListReplicasRequest): Promise<ListReplicasResponse> => ({
        replicas: (await store.listReplicas({ modelName: req.modelName, modelVersion: req.modelVersion })).map(toReplica),
      }),
      getReplica: async (req: GetReplicaRequest): Promise<GetReplicaResponse> => {
        const replica = await store.getReplica(req.modelName, req.modelVersion, req.replicaId);
        if (replica === null) {
          throw notFound("REPLICA_NOT_FOUND", `no replica ${req.replicaId} of model '${req.modelName}' version '${req.modelVersion}' is registered`);
        }
        return { replica: toReplica(replica) };
      },
      getSelectionState: async (req: GetSelectionStateRequest): Promise<GetSelectionStateResponse> => {
        const state = await store.getSelectionState(req.app);
        if (state === null) throw notFound("APP_NOT_FOUND", `no selection state is stored for application '${req.app}'`);
        return state;
      },
      setNumReplicas: async (req: SetNumReplicasRequest): Promise<SetNumReplicasResponse> => ({
        numReplicas: await requireManager().setReplicas(req.modelName, req.modelVersion, req.numReplicas),
      }),
      deployModel: async (req: DeployModelRequest, ctx: CallContext): Promise<DeployModelResponse> => {
        const w = req.worker;
        const out = await requireManager().deploy(
          {
            name: req.name,
            version: req.version,
            inputType: req.inputType,
            labels: req.labels,
            batchSize: req.batchSize === 0 ? ADAPTIVE_BATCH_SIZE : req.batchSize,
            policy: { cache: !req.noCache, coalesce: !req.noCoalesce },
            replicas: req.numReplicas,
            worker: {
              module: w?.module ?? "",
              command: w?.command ?? [],
              python: w?.python ?? "",
              env: w?.env ?? {},
              workingDir: w?.workingDir ?? "",
              concurrency: w?.concurrency ?? 0,
              maxBatchSize: w?.maxBatchSize ?? 0,
            },
          },
          ctx,
        );
        return { model: toModel(out.model), numReplicas: out.replicas, previousVersion: out.previousVersion };
      },
      listDeployments: async (req: ListDeploymentsRequest): Promise<ListDeploymentsResponse> => ({
        deployments: (await requireManager().list(req.modelName)).map(toDeployment),
      }),
    },
  };
}

/** Apps with their readiness: live replicas of the linked model's current version (Redis DB 3). */
async function withReadiness(store: AdminStore, apps: AppView[]): Promise<App[]> {
  const live = await store.liveReplicas(apps);
  return apps.map((a) => toApp(a, live.get(a.name) ?? 0));
}

function toApp(a: AppView, liveReplicas: number): App {
  return {
    name: a.name,
    inputType: a.inputType,
    defaultOutput: a.defaultOutput,
    latencySloMicros: a.latencySloMicros,
    linkedModels: a.linkedModels,
    policy: a.policy,
    ready: liveReplicas > 0,
    liveReplicas,
  };
}

function toModel(m: ModelView): Model {
  return {
    name: m.name,
    version: m.version,
    inputType: m.inputType,
    labels: m.labels,
    containerName: m.containerName,
    modelDataPath: m.modelDataPath,
    batchSize: m.batchSize,
    isCurrentVersion: m.isCurrentVersion,
    valid: m.valid,
    noCache: !m.policy.cache,
    noCoalesce: !m.policy.coalesce,
  };
}

function toDeployment(d: DeploymentView): Deployment {
  return {
    modelName: d.name,
    modelVersion: d.version,
    inputType: d.inputType,
    desiredReplicas: d.replicas,
    runningProcesses: d.runningProcesses,
    registeredReplicas: d.registeredReplicas,
    restarts: d.restarts,
    lastExit: d.lastExit,
    worker: { ...d.worker },
    isCurrentVersion: d.isCurrentVersion,
  };
}

function toReplica(c: ReplicaView): Replica {
  return {
    modelId: modelId(c.name, c.version),
    modelName: c.name,
    modelVersion: c.version,
    replicaId: c.replicaId,
    inputType: c.inputType,
    zmqConnectionId: c.zmqConnectionId,
    gatewayId: c.gatewayId,
    workerId: c.workerId,
  };
}
