import { status as Status } from "@grpc/grpc-js";
import { invalidArgument, ServingError } from "../../core/errors.js";
import { httpCallContext } from "../../core/http-call-context.js";
import { modelId } from "../../core/redis-layout.js";
import { readBody, type HttpMatch, type HttpRouteTable } from "../../core/servers/http-server.js";
import { responseClosed, type HttpRequest, type HttpResponse } from "../../core/servers/http-exchange.js";
import type { CallInstrument, InstrumentedMethod } from "../../core/telemetry/call-instrument.js";
import { untilAborted } from "../../core/until-aborted.js";
import type { AdminStore, AppView, ModelView } from "../admin-store.js";
import { ClipperJson, ClipperJsonError } from "./clipper-json.js";
import type { RequestTarget } from "../../core/servers/request-target.js";

type Reply = { json: unknown } | { text: string };
type Endpoint = { schema: string; run: (body: ClipperJson, store: AdminStore) => Promise<Reply> };

const text = (t: string): Reply => ({ text: t });
const json = (v: unknown): Reply => ({ json: v });

/**
 * Clipper's management REST API (clipper.md §2.2): same paths, bodies,
 * success strings and read shapes, so clipper_admin works unchanged. Every
 * endpoint is POST except GET /admin/ping.
 */
const ENDPOINTS: Readonly<Record<string, Endpoint>> = {
  add_app: {
    schema: '{"name": string, "input_type": string, "default_output": string, "latency_slo_micros": int}',
    run: async (b, s) => {
      const name = b.string("name");
      await s.createApp({ name, inputType: b.string("input_type"), defaultOutput: b.string("default_output"), latencySloMicros: b.int("latency_slo_micros") });
      return text(`Successfully added application with name '${name}'`);
    },
  },
  delete_app: {
    schema: '{"name": string}',
    run: async (b, s) => {
      const name = b.string("name");
      await s.deleteApp(name);
      return text(`Successfully deleted application with name '${name}'`);
    },
  },
  add_model_links: {
    schema: '{"app_name": string, "model_names": [string]}',
    run: async (b, s) => {
      const app = b.string("app_name");
      const models = b.stringArray("model_names");
      await s.linkModels(app, models);
      return text(`Successfully linked model with name '${models[0]}' to application '${app}'`);
    },
  },
  delete_model_links: {
    schema: '{"app_name": string, "model_names": [string]}',
    run: async (b, s) => {
      await s.unlinkModels(b.string("app_name"), b.stringArray("model_names"));
      return text("Success!");
    },
  },
  add_model: {
    schema:
      '{"model_name": string, "model_version": string, "labels": [string], "input_type": string, "container_name": string, "model_data_path": string, "batch_size": int}',
    run: async (b, s) => {
      const m = await s.registerModel({
        name: b.string("model_name"),
        version: b.string("model_version"),
        labels: b.stringArray("labels"),
        inputType: b.string("input_type"),
        containerName: b.string("container_name"),
        modelDataPath: b.string("model_data_path"),
        batchSize: b.int("batch_size"),
      });
      return text(`Successfully added model with name '${m.name}' and input type '${m.inputType}'`);
    },
  },
  set_model_version: {
    schema: '{"model_name": string, "model_version": string}',
    run: async (b, s) => {
      const m = await s.setModelVersion(b.string("model_name"), b.string("model_version"));
      return text(`Successfully set model with name '${m.name}' to version '${m.version}'`);
    },
  },
  delete_versioned_model: {
    schema: '{"model_name": string, "model_version": string}',
    run: async (b, s) => {
      const name = b.string("model_name");
      const version = b.string("model_version");
      await s.deleteModelVersion(name, version);
      return text(`Successfully deleted model with name '${name}' and version '${version}'`);
    },
  },
  get_all_applications: {
    schema: '{"verbose": bool}',
    run: async (b, s) => {
      const verbose = b.bool("verbose");
      const apps = await s.listApps();
      return json(verbose ? apps.map(appJson) : apps.map((a) => a.name));
    },
  },
  get_application: {
    schema: '{"name": string}',
    run: async (b, s) => {
      const app = await s.getApp(b.string("name"));
      return json(app === null ? {} : appJson(app));
    },
  },
  get_linked_models: {
    schema: '{"app_name": string}',
    run: async (b, s) => json(await s.linkedModels(b.string("app_name"))),
  },
  get_all_models: {
    schema: '{"verbose": bool}',
    run: async (b, s) => {
      const verbose = b.bool("verbose");
      const models = await s.listModels();
      return json(verbose ? models.map(modelJson) : models.map((m) => modelId(m.name, m.version)));
    },
  },
  get_model: {
    schema: '{"model_name": string, "model_version": string}',
    run: async (b, s) => {
      const m = await s.getModel(b.string("model_name"), b.string("model_version"));
      return json(m === null ? {} : modelJson(m));
    },
  },
  get_all_containers: {
    schema: '{"verbose": bool}',
    run: async (b, s) => {
      const verbose = b.bool("verbose");
      const replicas = await s.listReplicas();
      return json(
        verbose
          ? replicas.map((c) => ({
              model_id: modelId(c.name, c.version),
              model_name: c.name,
              model_version: c.version,
              model_replica_id: c.replicaId,
              input_type: c.inputType,
            }))
          : replicas.map((c) => `${modelId(c.name, c.version)}:${c.replicaId}`),
      );
    },
  },
  get_container: {
    schema: '{"model_name": string, "model_version": string, "replica_id": int}',
    run: async (b, s) => {
      const c = await s.getReplica(b.string("model_name"), b.string("model_version"), b.int("replica_id"));
      return json(
        c === null
          ? {}
          : { model_id: modelId(c.name, c.version), model_name: c.name, model_version: c.version, model_replica_id: c.replicaId, input_type: c.inputType },
      );
    },
  },
  get_state: {
    schema: '{"app_name": string, "uid": int}',
    run: async (b, s) => {
      const app = b.string("app_name");
      // Clipper logs and ignores a uid other than 0.
      b.int("uid");
      const state = await s.getSelectionState(app);
      return text(state === null ? "" : state.defaultOutput);
    },
  },
};

const PREFIX = "/admin/";

/**
 * Route table for Clipper's /admin/* endpoints over `store`. Each call has
 * the HTTP edges' CallContext: a `Grpc-Timeout` header bounds it (answered
 * 504 once passed, as on the predict route) and a client that disconnects
 * cancels it; the store operation itself is not interrupted, its late
 * outcome is dropped. With `calls`, each call is instrumented like an Admin
 * call (a span continuing the `traceparent` header; clipper_rpc_calls_total
 * with method "POST /admin/<endpoint>" and transport "clipper-rest").
 */
export function clipperAdminRoutes(store: AdminStore, options: { maxBodyBytes?: number; calls?: CallInstrument } = {}): HttpRouteTable {
  const calls = options.calls ?? null;
  const methods = new Map<string, InstrumentedMethod>();
  if (calls !== null) {
    for (const name of Object.keys(ENDPOINTS)) {
      methods.set(name, calls.method(`POST ${PREFIX}${name}`, { "http.request.method": "POST", "http.route": `${PREFIX}${name}` }));
    }
  }
  return {
    match(method: string, url: RequestTarget): HttpMatch | null {
      if (!url.pathname.startsWith(PREFIX)) return null;
      const name = url.pathname.slice(PREFIX.length).replace(/\/$/, "");
      if (name === "ping") {
        // Clipper's liveness probe: open, like /healthz.
        return method === "GET" ? { kind: "handler", access: "open", handle: async (_req, res) => send(res, 200, text("PONG")) } : { kind: "method-not-allowed", allow: ["GET"] };
      }
      const endpoint = ENDPOINTS[name];
      if (endpoint === undefined) return null;
      if (method !== "POST") return { kind: "method-not-allowed", allow: ["POST"] };
      const instrumented = methods.get(name) ?? null;
      const call: AdminCall = { endpoint, store, limit: options.maxBodyBytes, calls: instrumented === null ? null : calls, method: instrumented };
      return { kind: "handler", access: name.startsWith("get_") ? "read" : "admin", handle: (req, res) => handle(call, req, res) };
    },
  };
}

/** What one /admin/<endpoint> route serves with, fixed when it is matched. */
interface AdminCall {
  readonly endpoint: Endpoint;
  readonly store: AdminStore;
  readonly limit: number | undefined;
  /** Both set, or both null when calls are not instrumented. */
  readonly calls: CallInstrument | null;
  readonly method: InstrumentedMethod | null;
}

/** Serves one call within its context, and releases the context once answered. */
async function handle(call: AdminCall, req: HttpRequest, res: HttpResponse): Promise<void> {
  const scope = httpCallContext(req, res, "clipper-rest", fail);
  if (scope === null) return;
  const { ctx, dispose } = scope;
  const run = (): Promise<Reply> => untilAborted(serve(call.endpoint, call.store, req, call.limit), ctx);
  try {
    send(res, 200, await (call.calls === null || call.method === null ? run() : call.calls.run(call.method, ctx, run)));
  } catch (err) {
    fail(res, err);
  } finally {
    dispose();
  }
}

/** Reads and runs one call; a body Clipper would refuse is INVALID_ARGUMENT, answered as Clipper does (400, the bare message). */
async function serve(endpoint: Endpoint, store: AdminStore, req: HttpRequest, limit?: number): Promise<Reply> {
  const body = await readBody(req, limit);
  try {
    // Fields are read (and may be refused) as the endpoint runs, not only by parse().
    return await endpoint.run(ClipperJson.parse(body, endpoint.schema), store);
  } catch (err) {
    if (err instanceof ClipperJsonError) throw invalidArgument("INVALID_REQUEST", err.message);
    throw err;
  }
}

/**
 * Answers a failed call as Clipper does: 400 and the bare message for every
 * refused request; only outages (503), our own faults (500) and a passed
 * Grpc-Timeout (504) differ. A body over the limit is left to the HTTP
 * server (413), and a client that has gone gets nothing.
 */
function fail(res: HttpResponse, err: unknown): void {
  const e = ServingError.from(err);
  if (e.reason === "BODY_TOO_LARGE") throw e;
  if (responseClosed(res)) return;
  const status =
    e.code === Status.UNAVAILABLE ? 503
    : e.code === Status.DEADLINE_EXCEEDED ? 504
    : e.code === Status.INTERNAL || e.code === Status.DATA_LOSS ? 500
    : 400;
  send(res, status, text(e.message));
}

/** Clipper labels every response application/json, even plain text ones. */
function send(res: HttpResponse, status: number, reply: Reply): void {
  const body = "text" in reply ? reply.text : JSON.stringify(reply.json);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function appJson(a: AppView): Record<string, unknown> {
  return { input_type: a.inputType, default_output: a.defaultOutput, latency_slo_micros: a.latencySloMicros, name: a.name, linked_models: a.linkedModels };
}

function modelJson(m: ModelView): Record<string, unknown> {
  return {
    model_name: m.name,
    model_version: m.version,
    input_type: m.inputType,
    // Clipper splits an empty labels field into [""]; clients expect that.
    labels: m.labels.length === 0 ? [""] : m.labels,
    container_name: m.containerName,
    model_data_path: m.modelDataPath,
    is_current_version: m.isCurrentVersion,
  };
}
