import { status as Status } from "@grpc/grpc-js";
import type { CallContext } from "../../core/call-context.js";
import { httpCallContext } from "../../core/http-call-context.js";
import { ServingError } from "../../core/errors.js";
import { encodeJsonInput } from "../../core/input-codec.js";
import { readBody, sendError, sendJson, type HttpMatch, type HttpRouteTable } from "../../core/servers/http-server.js";
import type { HttpRequest, HttpResponse } from "../../core/servers/http-exchange.js";
import type { CallInstrument, InstrumentedMethod } from "../../core/telemetry/call-instrument.js";
import type { Prediction, Predictor } from "../predictor.js";
import { MAX_BATCH_INPUTS } from "../services/predict.js";
import { decodedPathText, type RequestTarget } from "../../core/servers/request-target.js";

/** Clipper's route: `POST /<app>/predict`, a trailing slash allowed. */
const ROUTE = /^\/([^/]+)\/predict\/?$/;

/**
 * Clipper's query REST API (clipper.md §3): `{"input": …}` or
 * `{"input_batch": […]}` with an optional `"version"`, answered with
 * Clipper's JSON (`query_id`, `output` parsed as JSON when it is JSON,
 * `default`, `default_explanation`, `batch_predictions`). Unlike Clipper, an
 * unknown app is 404 (Clipper sends no answer), a full queue 429 and a
 * passed caller deadline (Grpc-Timeout) 504. Each call is instrumented like
 * a gRPC one: a server span continuing the `traceparent` header, counted in
 * clipper_rpc_calls_total as method "POST /{app}/predict".
 */
export function clipperPredictRoutes(predictor: Predictor, calls: CallInstrument): HttpRouteTable {
  const instrumented = calls.method("POST /{app}/predict", { "http.request.method": "POST", "http.route": "/{app}/predict" });
  return {
    match(method: string, url: RequestTarget): HttpMatch | null {
      const m = ROUTE.exec(url.pathname);
      if (m === null) return null;
      if (method !== "POST") return { kind: "method-not-allowed", allow: ["POST"] };
      const app = decodedPathText(m[1]!);
      if (app === null) return { kind: "handler", access: "predict", handle: async (req, res) => refuseMalformedName(req, res) };
      return { kind: "handler", access: "predict", subject: app, handle: (req, res) => handle(predictor, app, req, res, calls, instrumented) };
    },
  };
}

/** Clipper's 400 body for a path whose app name cannot be decoded, so no app could have it. */
function refuseMalformedName(req: HttpRequest, res: HttpResponse): void {
  req.resume();
  sendJson(res, 400, { error: "Query processing error", cause: "the application name in the path is not valid percent-encoding (%XX with hex digits, UTF-8)" });
}

/** A body Clipper would refuse as "Json error" (400); INVALID_ARGUMENT in metrics and spans. */
class JsonError extends ServingError {
  constructor(message: string) {
    super(Status.INVALID_ARGUMENT, "INVALID_REQUEST", message);
  }
}

async function handle(
  predictor: Predictor,
  appName: string,
  req: HttpRequest,
  res: HttpResponse,
  calls: CallInstrument,
  method: InstrumentedMethod,
): Promise<void> {
  const scope = httpCallContext(req, res, "clipper-rest", sendError);
  if (scope === null) return;
  const { ctx, dispose } = scope;
  try {
    await calls.run(method, ctx, () => answer(predictor, appName, req, res, ctx));
  } catch (err) {
    if (err instanceof JsonError) {
      sendJson(res, 400, { error: "Json error", cause: `Error parsing JSON: ${err.message}` });
    } else if (err instanceof ServingError && err.code === Status.INVALID_ARGUMENT) {
      sendJson(res, 400, { error: "Query processing error", cause: err.message });
    } else {
      sendError(res, err);
    }
  } finally {
    dispose();
  }
}

/** Reads, predicts and writes the answer; throws what `handle` turns into Clipper's error bodies. */
async function answer(predictor: Predictor, appName: string, req: HttpRequest, res: HttpResponse, ctx: CallContext): Promise<void> {
  const body = parseBody(await readBody(req));
  const version = body.version;
  if (version !== undefined && typeof version !== "string") throw new JsonError("version must be a string");
  const target = predictor.target(appName, version ?? "");
  if ("input" in body) {
    sendJson(res, 200, render(await predictor.predict(target, encode(body.input, target.app.inputType, "input"), ctx)));
    return;
  }
  const batch = body.input_batch;
  if (!Array.isArray(batch)) throw new JsonError("input_batch must be an array of inputs");
  if (batch.length === 0) throw new JsonError("input_batch must not be empty");
  if (batch.length > MAX_BATCH_INPUTS) throw new JsonError(`input_batch has ${batch.length} inputs; send at most ${MAX_BATCH_INPUTS}`);
  const inputs = batch.map((x, i) => encode(x, target.app.inputType, `input_batch[${i}]`));
  const answers = await Promise.all(inputs.map((bytes) => predictOrFail(predictor, target, bytes, ctx)));
  // Clipper drops a query that failed from the batch and answers the rest.
  const rendered = answers.filter((a): a is Prediction => a !== null).map(render);
  sendJson(res, 200, batch.length === 1 && rendered.length === 1 ? rendered[0]! : `{"batch_predictions":[${rendered.join(",")}]}`);
}

async function predictOrFail(predictor: Predictor, target: Parameters<Predictor["predict"]>[0], bytes: Buffer, ctx: CallContext): Promise<Prediction | null> {
  try {
    return await predictor.predict(target, bytes, ctx);
  } catch (err) {
    // One failed query must not hide the answers of the others.
    if (ServingError.from(err).reason === "MODEL_ERROR") return null;
    throw err;
  }
}

function parseBody(body: Buffer): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new JsonError(`JSON parse error: ${(err as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new JsonError("the body must be a JSON object");
  const obj = doc as Record<string, unknown>;
  if (!("input" in obj) && !("input_batch" in obj)) throw new JsonError("JSON object does not have required keys input or input_batch");
  return obj;
}

function encode(value: unknown, type: Parameters<typeof encodeJsonInput>[1], where: string): Buffer {
  const enc = encodeJsonInput(value, type);
  if (!enc.ok) throw new JsonError(`${where}: ${enc.error.replace(/^input(\[\d+\])? /, "")}`);
  return enc.bytes;
}

/**
 * Clipper's response object as JSON text, written directly (no object to
 * stringify); `output` nested as JSON when it parses, re-serialized so the
 * text is what JSON.stringify of the parsed value gives.
 */
function render(p: Prediction): string {
  let output: unknown = p.output;
  try {
    output = JSON.parse(p.output);
  } catch {
    // Not JSON: Clipper sends it as a string.
  }
  const head = `{"query_id":${JSON.stringify(p.queryId)},"output":${JSON.stringify(output)},"default":${p.isDefault}`;
  return p.isDefault ? `${head},"default_explanation":${JSON.stringify(p.defaultExplanation)}}` : `${head}}`;
}
