/**
 * Typed TypeScript clients for clipper-ts over the generated stubs in gen/:
 * Predict and Heartbeat (the gateway), Admin (management). Unary methods
 * return promises, take partial requests (unset fields get their protobuf
 * defaults) and carry a deadline by default, so no call can hang.
 *
 * ```ts
 * const predict = createPredictClient("127.0.0.1:50051");
 * const answer = await predict.predict({ app: "demo", input: { doubles: [1, 2, 3] } });
 * console.log(answer.output); // "6"
 * predict.close();
 * ```
 *
 * This module imports only gen/, @grpc/grpc-js and Node built-ins
 * (test/architecture.test.ts checks it), so it can be copied into any
 * project that generates the same stubs.
 */
import {
  credentials as grpcCredentials,
  Metadata,
  status as Status,
  type ChannelCredentials,
  type ChannelOptions,
  type Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  AdminClient,
  AdminService,
  CreateAppRequest,
  DeleteAppRequest,
  DeleteModelVersionRequest,
  DeployModelRequest,
  GetAppRequest,
  GetModelRequest,
  GetReplicaRequest,
  GetSelectionStateRequest,
  LinkModelRequest,
  ListAppsRequest,
  ListDeploymentsRequest,
  ListModelsRequest,
  ListReplicasRequest,
  RegisterModelRequest,
  SetModelVersionRequest,
  SetNumReplicasRequest,
  UnlinkModelRequest,
  type DeepPartial,
} from "../gen/clipper/v1/admin.js";
import { HeartbeatClient, HeartbeatService, ListWorkersRequest, WatchWorkersRequest, type WatchWorkersResponse } from "../gen/clipper/v1/heartbeat.js";
import {
  PredictBatchRequest,
  PredictClient,
  PredictRequest,
  PredictService,
  type PredictStreamRequest,
  type PredictStreamResponse,
} from "../gen/clipper/v1/predict.js";

/** Where `clipper up` (and the gateway's defaults) serve Predict and Heartbeat. */
export const DEFAULT_GATEWAY_ADDRESS = "127.0.0.1:50051";
/** Where `clipper up` (and management's defaults) serve Admin. */
export const DEFAULT_MANAGEMENT_ADDRESS = "127.0.0.1:50052";
/**
 * Default deadline of a Predict call, in ms: above any sensible app SLO (the
 * gateway answers the default output when the SLO passes), so the deadline
 * only bites when the gateway itself is unreachable or stuck.
 */
export const DEFAULT_PREDICT_DEADLINE_MS = 10_000;
/** Default deadline of an Admin or Heartbeat call, in ms: they are Redis round trips. */
export const DEFAULT_ADMIN_DEADLINE_MS = 10_000;
/** Default deadline of Admin.DeployModel and SetModelVersion, in ms: they wait up to 60 s for new workers to register. */
export const DEFAULT_ROLLOUT_DEADLINE_MS = 90_000;

/** Options of a client (one channel). */
export interface ClientOptions {
  /** Default: insecure (plain-text HTTP/2), as the local stack serves. */
  readonly credentials?: ChannelCredentials;
  /** Deadline of each unary call unless the call gives its own, in ms. */
  readonly deadlineMs?: number;
  readonly channelOptions?: ChannelOptions;
  /** Sent as `authorization: Bearer <token>` on every call (servers run with --auth-tokens need it). */
  readonly token?: string;
}

/** Options of one call. */
export interface CallOptions {
  /** This call's deadline in ms from now. */
  readonly deadlineMs?: number;
  /** Cancels the call (it then rejects with CANCELLED). */
  readonly signal?: AbortSignal;
  /** Extra request metadata (gRPC headers). */
  readonly metadata?: Readonly<Record<string, string>>;
}

interface UnaryDef {
  readonly path: string;
  readonly requestStream: false;
  readonly responseStream: false;
  readonly requestSerialize: (value: never) => Buffer;
  readonly responseDeserialize: (value: Buffer) => unknown;
}

type UnaryKeys<S> = { [K in keyof S]: S[K] extends UnaryDef ? K : never }[keyof S];
type RequestOf<D> = D extends { requestSerialize: (value: infer Req) => Buffer } ? Req : never;
type ResponseOf<D> = D extends { responseDeserialize: (value: Buffer) => infer Res } ? Res : never;

/** A service's unary methods as promise-returning functions over partial requests. */
export type UnaryApi<S> = {
  readonly [K in UnaryKeys<S>]: (request?: DeepPartial<RequestOf<S[K]>>, options?: CallOptions) => Promise<ResponseOf<S[K]>>;
};

/** The Predict service (gateway). */
export type PredictApi = UnaryApi<typeof PredictService> & {
  /** PredictStream: a bidirectional stream; match answers to requests by correlationId. No default deadline. */
  stream(options?: CallOptions): ClientDuplexStream<PredictStreamRequest, PredictStreamResponse>;
  close(): void;
};

/** The Admin service (management). */
export type AdminApi = UnaryApi<typeof AdminService> & { close(): void };

/** The Heartbeat service (gateway). */
export type HeartbeatApi = UnaryApi<typeof HeartbeatService> & {
  /** WatchWorkers: the current workers, then one event per change; an async iterable. Cancel with options.signal. */
  watch(request?: DeepPartial<WatchWorkersRequest>, options?: CallOptions): ClientReadableStream<WatchWorkersResponse>;
  close(): void;
};

interface PartialFns<T> {
  fromPartial(object: DeepPartial<T>): T;
}

const PREDICT_REQUESTS = { predict: PredictRequest, predictBatch: PredictBatchRequest } as const;
const HEARTBEAT_REQUESTS = { listWorkers: ListWorkersRequest } as const;
const ADMIN_REQUESTS = {
  createApp: CreateAppRequest,
  getApp: GetAppRequest,
  listApps: ListAppsRequest,
  deleteApp: DeleteAppRequest,
  registerModel: RegisterModelRequest,
  getModel: GetModelRequest,
  listModels: ListModelsRequest,
  setModelVersion: SetModelVersionRequest,
  deleteModelVersion: DeleteModelVersionRequest,
  linkModel: LinkModelRequest,
  unlinkModel: UnlinkModelRequest,
  listReplicas: ListReplicasRequest,
  getReplica: GetReplicaRequest,
  getSelectionState: GetSelectionStateRequest,
  setNumReplicas: SetNumReplicasRequest,
  deployModel: DeployModelRequest,
  listDeployments: ListDeploymentsRequest,
} as const;
/** Admin methods that wait for workers to come up, and so get the longer default deadline. */
const ROLLOUT_METHODS = new Set(["deployModel", "setModelVersion"]);

/** A client for clipper.v1.Predict at `address` (host:port). */
export function createPredictClient(address: string = DEFAULT_GATEWAY_ADDRESS, options: ClientOptions = {}): PredictApi {
  const client = new PredictClient(address, options.credentials ?? grpcCredentials.createInsecure(), options.channelOptions);
  const auth = authMetadata(options);
  return Object.assign(unaryApi(client, PredictService, PREDICT_REQUESTS, auth, options.deadlineMs ?? DEFAULT_PREDICT_DEADLINE_MS), {
    stream: (o: CallOptions = {}) => {
      const call = client.predictStream(toMetadata(auth, o.metadata), o.deadlineMs === undefined ? {} : { deadline: deadlineOf(o.deadlineMs) });
      o.signal?.addEventListener("abort", () => call.cancel(), { once: true });
      return call;
    },
    close: () => client.close(),
  }) as PredictApi;
}

/** A client for clipper.v1.Admin at `address` (host:port). */
export function createAdminClient(address: string = DEFAULT_MANAGEMENT_ADDRESS, options: ClientOptions = {}): AdminApi {
  const client = new AdminClient(address, options.credentials ?? grpcCredentials.createInsecure(), options.channelOptions);
  const deadlineMs = options.deadlineMs ?? DEFAULT_ADMIN_DEADLINE_MS;
  const api = unaryApi(client, AdminService, ADMIN_REQUESTS, authMetadata(options), deadlineMs, (m) => (ROLLOUT_METHODS.has(m) ? Math.max(deadlineMs, DEFAULT_ROLLOUT_DEADLINE_MS) : deadlineMs));
  return Object.assign(api, { close: () => client.close() }) as AdminApi;
}

/** A client for clipper.v1.Heartbeat at `address` (host:port), the gateway's. */
export function createHeartbeatClient(address: string = DEFAULT_GATEWAY_ADDRESS, options: ClientOptions = {}): HeartbeatApi {
  const client = new HeartbeatClient(address, options.credentials ?? grpcCredentials.createInsecure(), options.channelOptions);
  const auth = authMetadata(options);
  return Object.assign(unaryApi(client, HeartbeatService, HEARTBEAT_REQUESTS, auth, options.deadlineMs ?? DEFAULT_ADMIN_DEADLINE_MS), {
    watch: (request: DeepPartial<WatchWorkersRequest> = {}, o: CallOptions = {}) => {
      const call = client.watchWorkers(
        WatchWorkersRequest.fromPartial(request),
        toMetadata(auth, o.metadata),
        o.deadlineMs === undefined ? {} : { deadline: deadlineOf(o.deadlineMs) },
      );
      o.signal?.addEventListener("abort", () => call.cancel(), { once: true });
      return call;
    },
    close: () => client.close(),
  }) as HeartbeatApi;
}

/** The name of a gRPC status code, e.g. 5 → "NOT_FOUND". */
export function statusName(code: number): string {
  return (Status as unknown as Record<number, string>)[code] ?? `CODE_${code}`;
}

/** True when `err` is a gRPC ServiceError (what every client method rejects with). */
export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number" && (err as Partial<ServiceError>).metadata !== undefined;
}

function unaryApi<S extends object>(
  client: Client,
  service: S,
  requests: Readonly<Record<string, PartialFns<unknown>>>,
  auth: Readonly<Record<string, string>>,
  defaultDeadlineMs: number,
  deadlineFor: (method: string) => number = () => defaultDeadlineMs,
): UnaryApi<S> {
  const api: Record<string, unknown> = {};
  for (const [method, fns] of Object.entries(requests)) {
    const def = (service as Record<string, UnaryDef>)[method]!;
    api[method] = (request: object = {}, o: CallOptions = {}) =>
      new Promise((resolve, reject) => {
        const call = client.makeUnaryRequest(
          def.path,
          def.requestSerialize as (value: unknown) => Buffer,
          def.responseDeserialize,
          fns.fromPartial(request as DeepPartial<unknown>),
          toMetadata(auth, o.metadata),
          { deadline: deadlineOf(o.deadlineMs ?? deadlineFor(method)) },
          (err: ServiceError | null, res?: unknown) => (err !== null ? reject(err) : resolve(res)),
        );
        o.signal?.addEventListener("abort", () => call.cancel(), { once: true });
      });
  }
  return api as UnaryApi<S>;
}

function deadlineOf(ms: number): Date {
  return new Date(Date.now() + ms);
}

/** The metadata every call of a client carries: its token, when it has one. */
function authMetadata(options: ClientOptions): Readonly<Record<string, string>> {
  return options.token === undefined || options.token === "" ? {} : { authorization: `Bearer ${options.token}` };
}

function toMetadata(base: Readonly<Record<string, string>>, entries: Readonly<Record<string, string>> | undefined): Metadata {
  const md = new Metadata();
  for (const [k, v] of Object.entries(base)) md.set(k, v);
  for (const [k, v] of Object.entries(entries ?? {})) md.set(k, v);
  return md;
}
