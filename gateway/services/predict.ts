import type { ServerDuplexStream, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { CallContext } from "../../core/call-context.js";
import { invalidArgument, ServingError } from "../../core/errors.js";
import { encodeInput } from "../../core/input-codec.js";
import { withDeadline } from "../../core/lazy-call-context.js";
import { grpcCallContext } from "../../core/grpc-call-context.js";
import type { UnaryServiceBinding } from "../../core/service-binding.js";
import type { CallInstrument } from "../../core/telemetry/call-instrument.js";
import {
  PredictService,
  type PredictBatchRequest,
  type PredictBatchResponse,
  type PredictRequest,
  type PredictResponse,
  type PredictStreamRequest,
  type PredictStreamResponse,
} from "../../gen/clipper/v1/predict.js";
import type { Input } from "../../gen/clipper/v1/input.js";
import { BoundedStreamWriter, DEFAULT_STREAM_STALL_MS } from "../../core/servers/bounded-stream.js";
import type { Prediction, Predictor, Target } from "../predictor.js";

/** The full name of clipper.v1.Predict, as grpc-js and reflection name it. */
export const PREDICT_SERVICE_NAME = "clipper.v1.Predict";

/** Most inputs one PredictBatch call may carry. */
export const MAX_BATCH_INPUTS = 1_000;

/** Encodes one input for the target, or throws INVALID_ARGUMENT naming its position. */
function encodeFor(target: Target, input: Input | undefined, where: string): Buffer {
  const enc = encodeInput(input, target.app.inputType);
  if (!enc.ok) throw invalidArgument("INVALID_INPUT", `${where}${enc.error}`);
  return enc.bytes;
}

function toResponse(p: Prediction): PredictResponse {
  return {
    queryId: p.queryId,
    output: p.output,
    default: p.isDefault,
    defaultExplanation: p.defaultExplanation,
    model: p.model,
    modelVersion: p.modelVersion,
  };
}

function predictOne(predictor: Predictor, req: PredictRequest, ctx: CallContext): Promise<PredictResponse> {
  // Not async, to save a promise per call; a synchronous throw still becomes a rejection.
  try {
    const target = predictor.target(req.app, req.version);
    return predictor.predict(target, encodeFor(target, req.input, ""), ctx).then(toResponse);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** clipper.v1.Predict's unary methods (served over gRPC and transcoded HTTP). */
export function predictBinding(predictor: Predictor): UnaryServiceBinding {
  return {
    name: PREDICT_SERVICE_NAME,
    definition: PredictService,
    handlers: {
      predict: (req: PredictRequest, ctx: CallContext) => predictOne(predictor, req, ctx),
      predictBatch: async (req: PredictBatchRequest, ctx: CallContext): Promise<PredictBatchResponse> => {
        if (req.inputs.length === 0) throw invalidArgument("INVALID_INPUT", "inputs is empty; send at least one input");
        if (req.inputs.length > MAX_BATCH_INPUTS) {
          throw invalidArgument("INVALID_INPUT", `inputs has ${req.inputs.length} items; send at most ${MAX_BATCH_INPUTS} per call`);
        }
        const target = predictor.target(req.app, req.version);
        // Every input is checked before any is queued: a bad one fails the call, not half of it.
        const encoded = req.inputs.map((input, i) => encodeFor(target, input, `inputs[${i}]: `));
        const predictions = await Promise.all(encoded.map((bytes) => predictor.predict(target, bytes, ctx)));
        return { predictions: predictions.map(toResponse) };
      },
    },
  };
}

/** Most queries one stream may have unanswered or unwritten at once; beyond it the stream stops reading. */
const STREAM_WINDOW = 1_024;

/**
 * PredictStream: answers each query as soon as it is ready, matched by
 * correlation id. Each query is one instrumented call (its own span, under
 * the stream's incoming trace context, and one count in the RPC metrics).
 * Backpressure: while STREAM_WINDOW queries are unanswered or answered but
 * not yet taken by a client that does not read, the stream stops reading
 * requests (HTTP/2 flow control then stops the client); a stream blocked
 * longer than `stallMs` ends with RESOURCE_EXHAUSTED (core/servers/bounded-stream.ts).
 */
export function predictStreaming(predictor: Predictor, calls: CallInstrument, stallMs = DEFAULT_STREAM_STALL_MS): UntypedServiceImplementation {
  const method = calls.method(`${PREDICT_SERVICE_NAME}/PredictStream`, { "rpc.system": "grpc", "rpc.service": PREDICT_SERVICE_NAME, "rpc.method": "PredictStream" });
  return {
    predictStream: (call: ServerDuplexStream<PredictStreamRequest, PredictStreamResponse>) => {
      const { ctx, dispose } = grpcCallContext(call);
      let unanswered = 0;
      let ended = false;
      // Never more than STREAM_WINDOW answers wait, since reading pauses first.
      const out = new BoundedStreamWriter<PredictStreamResponse>(call, {
        stallMs,
        maxBacklog: STREAM_WINDOW,
        what: "PredictStream",
        onWritable: () => flow(),
        // Given up: read nothing more; queries in flight finish (or are cancelled with the call) unanswered.
        onFailed: () => call.pause(),
      });
      const flow = (): void => {
        if (!out.open) return;
        if (unanswered + out.backlog >= STREAM_WINDOW) call.pause();
        else call.resume();
        if (ended && unanswered === 0) out.end();
      };
      call.on("data", (msg: PredictStreamRequest) => {
        unanswered++;
        flow();
        const itemCtx: CallContext =
          msg.timeoutMicros > 0 ? withDeadline(ctx, Math.min(ctx.deadline, Date.now() + msg.timeoutMicros / 1000)) : ctx;
        const request = msg.request ?? { app: "", version: "" };
        calls.run(method, itemCtx, () => predictOne(predictor, request as PredictRequest, itemCtx)).then(
          (response) => ({ correlationId: msg.correlationId, response }),
          (err: unknown) => {
            const e = ServingError.from(err);
            return { correlationId: msg.correlationId, error: { code: e.code, message: e.message, details: [] } };
          },
        ).then((answer: PredictStreamResponse) => {
          unanswered--;
          out.send(answer);
          flow();
        });
      });
      call.on("end", () => {
        ended = true;
        flow();
      });
      // Disposed only once the call is over, so a cancel still aborts the queries in flight.
      call.once("cancelled", () => {
        out.close();
        dispose();
      });
      call.once("finish", dispose);
    },
  };
}
