import {
  AdminService,
  type App,
  type CreateAppRequest,
  type CreateAppResponse,
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
import type { ContainerRecord } from "../../core/redis-layout.js";
import type { UnaryServiceBinding } from "../../core/service-binding.js";
import type { AdminStore, AppView, ModelView } from "../admin-store.js";

/** Full protobuf name of the Admin service. */
export const ADMIN_SERVICE_NAME = "clipper.v1.Admin";

/**
 * clipper.v1.Admin over an AdminStore: maps protobuf messages to store
 * calls and back. Served unchanged over gRPC and transcoded HTTP.
 */
export function adminBinding(store: AdminStore): UnaryServiceBinding {
  return {
    name: ADMIN_SERVICE_NAME,
    definition: AdminService,
    handlers: {
      createApp: async (req: CreateAppRequest): Promise<CreateAppResponse> => ({ app: toApp(await store.createApp(req)) }),
      getApp: async (req: GetAppRequest): Promise<GetAppResponse> => ({ app: toApp(await store.requireApp(req.name)) }),
      listApps: async (): Promise<ListAppsResponse> => ({ apps: (await store.listApps()).map(toApp) }),
      deleteApp: async (req: DeleteAppRequest): Promise<DeleteAppResponse> => {
        await store.deleteApp(req.name);
        return {};
      },
      registerModel: async (req: RegisterModelRequest): Promise<RegisterModelResponse> => ({
        // proto3 cannot tell 0 from unset: 0 means adaptive here.
        model: toModel(await store.registerModel({ ...req, batchSize: req.batchSize === 0 ? ADAPTIVE_BATCH_SIZE : req.batchSize })),
      }),
      getModel: async (req: GetModelRequest): Promise<GetModelResponse> => ({
        model: toModel(await store.requireModel(req.name, req.version)),
      }),
      listModels: async (req: ListModelsRequest): Promise<ListModelsResponse> => ({
        models: (await store.listModels(req.name)).map(toModel),
      }),
      setModelVersion: async (req: SetModelVersionRequest): Promise<SetModelVersionResponse> => ({
        model: toModel(await store.setModelVersion(req.name, req.version)),
      }),
      deleteModelVersion: async (req: DeleteModelVersionRequest): Promise<DeleteModelVersionResponse> => {
        await store.deleteModelVersion(req.name, req.version);
        return {};
      },
      linkModel: async (req: LinkModelRequest): Promise<LinkModelResponse> => ({
        app: toApp(await store.linkModels(req.app, [req.model])),
      }),
      unlinkModel: async (req: UnlinkModelRequest): Promise<UnlinkModelResponse> => ({
        app: toApp(await store.unlinkModels(req.app, [req.model])),
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
      setNumReplicas: async (): Promise<SetNumReplicasResponse> => {
        throw new ServingError(
          Status.FAILED_PRECONDITION,
          "NO_REPLICA_MANAGER",
          "this management server runs without a replica manager; start workers with clipper-worker (or your orchestrator) instead",
        );
      },
    },
  };
}

function toApp(a: AppView): App {
  return {
    name: a.name,
    inputType: a.inputType,
    defaultOutput: a.defaultOutput,
    latencySloMicros: a.latencySloMicros,
    linkedModels: a.linkedModels,
    policy: a.policy,
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
  };
}

function toReplica(c: ContainerRecord): Replica {
  return {
    modelId: modelId(c.name, c.version),
    modelName: c.name,
    modelVersion: c.version,
    replicaId: c.replicaId,
    inputType: c.inputType,
    zmqConnectionId: c.zmqConnectionId,
  };
}
