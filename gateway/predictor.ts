import { performance } from "node:perf_hooks";
import { status as Status } from "@grpc/grpc-js";
import type { Span } from "@opentelemetry/api";
import type { CallContext } from "../core/call-context.js";
import { ServingError, invalidArgument, notFound } from "../core/errors.js";
import { cacheKey, InFlight, PredictionCache } from "./cache.js";
import type { Catalog, CatalogApp } from "./catalog.js";
import type { Dispatcher } from "./dispatcher.js";
import type { AppInstruments, CacheResult, GatewayMetrics } from "./metrics.js";
import { callTraceContext, endCacheSpan, endQueueSpan, startCacheSpan } from "./spans.js";
import type { Task, TaskOutcome } from "./task.js";

/** Clipper's explanations for a default output (clipper.md §3.4). */
export const NO_MODEL_EXPLANATION = "No connected models found for query";
export const SLO_EXPLANATION = "Failed to retrieve a prediction response within the specified latency SLO";

/** Seconds a caller refused for a full queue is told to wait before retrying. */
const RETRY_AFTER_SECONDS = 1;

/** The answer to one query. */
export interface Prediction {
  readonly queryId: number;
  readonly output: string;
  readonly isDefault: boolean;
  readonly defaultExplanation: string;
  readonly model: string;
  readonly modelVersion: string;
}

/** Where an app's queries go: its linked model at a version, or nowhere. */
export interface Target {
  readonly app: CatalogApp;
  readonly model: string;
  /** "" when no version could be resolved (the default answers at once). */
  readonly version: string;
}

/**
 * The one Predict handler behind gRPC, transcoded HTTP and Clipper REST:
 * catalog → cache → queue → answer, or the app's default output when the
 * SLO passes first or no replica is connected. The caller's own deadline
 * passing first is DEADLINE_EXCEEDED instead. Every query is counted by
 * outcome and timed (gateway/metrics.ts); with tracing on, its cache lookup
 * and queue wait are spans under the call's span (gateway/spans.ts).
 */
export class Predictor {
  readonly #catalog: Catalog;
  readonly #dispatcher: Dispatcher;
  readonly #cache: PredictionCache;
  readonly #inFlight = new InFlight<string>();
  readonly #metrics: GatewayMetrics;
  #nextQueryId = 0;

  constructor(catalog: Catalog, dispatcher: Dispatcher, cache: PredictionCache, metrics: GatewayMetrics) {
    this.#catalog = catalog;
    this.#dispatcher = dispatcher;
    this.#cache = cache;
    this.#metrics = metrics;
  }

  /** The app and the model version its queries go to; errors for unknown apps and versions. */
  target(appName: string, pinnedVersion: string): Target {
    const app = this.#catalog.app(appName);
    if (app === undefined) throw notFound("APP_NOT_FOUND", `No application with name '${appName}' exists.`);
    const model = app.linkedModels[0];
    if (model === undefined) {
      if (pinnedVersion !== "") throw invalidArgument("MODEL_NOT_FOUND", `application '${appName}' has no linked model, so version '${pinnedVersion}' cannot be used`);
      return { app, model: "", version: "" };
    }
    if (pinnedVersion !== "") {
      if (this.#catalog.model(model, pinnedVersion) === undefined) {
        throw invalidArgument("MODEL_NOT_FOUND", `Requested version: ${pinnedVersion} does not exist for model: ${model}`);
      }
      return { app, model, version: pinnedVersion };
    }
    return { app, model, version: this.#catalog.currentVersion(model) ?? "" };
  }

  /** Answers one query whose input is already encoded for the target's input type. */
  async predict(target: Target, input: Buffer, ctx: CallContext): Promise<Prediction> {
    const start = performance.now();
    const m = this.#metrics.app(target.app.name, target.model, target.version);
    try {
      const p = await this.#predict(target, input, ctx, m);
      m.answered(p.isDefault ? "default" : "ok", start);
      return p;
    } catch (err) {
      m.answered(err instanceof ServingError && err.reason === "QUEUE_FULL" ? "shed" : "error", start);
      throw err;
    }
  }

  async #predict(target: Target, input: Buffer, ctx: CallContext, m: AppInstruments): Promise<Prediction> {
    const queryId = this.#nextQueryId++;
    const now = Date.now();
    const { app, model, version } = target;
    const answer = (output: string, explanation: string): Prediction => ({
      queryId,
      output,
      isDefault: explanation !== "",
      defaultExplanation: explanation,
      model,
      modelVersion: version,
    });
    if (ctx.deadline <= now) throw deadlineExceeded();
    if (version === "") {
      m.defaulted("no_model");
      return answer(app.defaultOutput, NO_MODEL_EXPLANATION);
    }

    const traceContext = callTraceContext();
    const cacheSpan = startCacheSpan(traceContext, model, version);
    const key = cacheKey(model, version, input);
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      this.#looked(cacheSpan, "hit");
      return answer(cached, "");
    }
    if (this.#dispatcher.replicaCount(model, version) === 0) {
      this.#looked(cacheSpan, "miss");
      m.defaulted("no_replica");
      return answer(app.defaultOutput, NO_MODEL_EXPLANATION);
    }

    const sloDeadline = now + app.latencySloMicros / 1000;
    const deadline = Math.min(sloDeadline, ctx.deadline);
    let outcome: Raced;
    let task: Task | null = null;
    for (let lookup = 0; ; lookup++) {
      const joined = this.#inFlight.join(key);
      if (lookup === 0) this.#looked(cacheSpan, joined.kind === "follower" ? "coalesced" : "miss");
      task = null;
      let result: Promise<string>;
      if (joined.kind === "follower") {
        result = joined.promise;
      } else {
        const leader = this.#lead(key, model, version, input, deadline, ctx, traceContext, joined.settle);
        task = leader.task;
        result = leader.result;
        const queued = this.#dispatcher.enqueue(model, version, task);
        if (queued !== "queued") {
          const err = queued === "full"
            ? new ServingError(Status.RESOURCE_EXHAUSTED, "QUEUE_FULL", `the queue of model ${model}:${version} is full; retry in ${RETRY_AFTER_SECONDS} s or add replicas`, {
                headers: { "retry-after": String(RETRY_AFTER_SECONDS) },
              })
            : null;
          joined.settle(err === null ? { ok: false, error: abandoned() } : { ok: false, error: err });
          if (err !== null) throw err;
          m.defaulted("no_replica");
          return answer(app.defaultOutput, NO_MODEL_EXPLANATION);
        }
      }
      outcome = await raceDeadline(result, deadline, ctx.signal);
      if (outcome.kind === "error" && isLost(outcome.error)) {
        // The query this one shared was given up by its own caller, or was
        // dropped before a replica could run it: while this caller still has
        // time, it asks again (as the new leader if nobody else has).
        if (task === null && Date.now() < deadline) continue;
        outcome = { kind: "timeout" };
      }
      break;
    }
    if (outcome.kind === "value") return answer(outcome.value, "");
    if (outcome.kind === "error") throw outcome.error;
    if (task !== null) {
      const t = task as Task;
      t.settled = outcome.kind === "cancelled" || deadline < sloDeadline;
      if (t.settled) {
        // Nobody waits for this task any more: release the callers sharing it
        // (they ask again) and let the dispatcher skip it.
        t.complete({ ok: false, code: Status.CANCELLED, message: ABANDONED_MESSAGE });
        endQueueSpan(t, "abandoned");
      }
    }
    if (outcome.kind === "cancelled") throw new ServingError(Status.CANCELLED, "CANCELLED", "the caller cancelled the call");
    if (deadline < sloDeadline) throw deadlineExceeded();
    m.defaulted("slo");
    return answer(app.defaultOutput, SLO_EXPLANATION);
  }

  /** The task a leading query enqueues, and the promise of its answer. */
  #lead(
    key: string,
    model: string,
    version: string,
    input: Buffer,
    deadline: number,
    ctx: CallContext,
    traceContext: Task["traceContext"],
    settle: (outcome: { ok: true; value: string } | { ok: false; error: unknown }) => void,
  ): { task: Task; result: Promise<string> } {
    const cache = this.#cache;
    let task!: Task;
    const result = new Promise<string>((resolve, reject) => {
      task = {
        deadline,
        settled: false,
        input,
        traceparent: ctx.metadata.get("traceparent") ?? "",
        traceContext,
        queueSpan: null,
        enqueuedAt: 0,
        attempts: 0,
        complete(outcome: TaskOutcome) {
          if (outcome.ok) {
            // Late answers still fill the cache (Clipper semantics).
            cache.put(key, outcome.output);
            settle({ ok: true, value: outcome.output });
            resolve(outcome.output);
            return;
          }
          const err = outcome.code === Status.CANCELLED && outcome.message === ABANDONED_MESSAGE
            ? abandoned()
            : outcome.code === Status.DEADLINE_EXCEEDED
              ? new ServingError(Status.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", outcome.message)
              : new ServingError(outcome.code === 0 ? Status.INTERNAL : outcome.code, "MODEL_ERROR", `model ${model}:${version} failed: ${outcome.message}`);
          settle({ ok: false, error: err });
          reject(err);
        },
      };
    });
    result.catch(() => {});
    return { task, result };
  }

  /** Counts a cache lookup and ends its span. */
  #looked(span: Span | null, result: CacheResult): void {
    this.#metrics.cacheLookup(result);
    endCacheSpan(span, result);
  }
}

const ABANDONED_MESSAGE = "the caller this query was shared with gave up";

function abandoned(): ServingError {
  return new ServingError(Status.CANCELLED, "CANCELLED", ABANDONED_MESSAGE);
}

/**
 * True for the errors that mean "no answer is coming for the shared task"
 * rather than "the model failed": the leader gave up, or the task was
 * dropped (or skipped by the worker) as past its deadline.
 */
function isLost(err: unknown): boolean {
  return err instanceof ServingError && (err.code === Status.DEADLINE_EXCEEDED || (err.code === Status.CANCELLED && err.message === ABANDONED_MESSAGE));
}

function deadlineExceeded(): ServingError {
  return new ServingError(Status.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "the call's deadline passed before the model answered");
}

type Raced = { kind: "value"; value: string } | { kind: "error"; error: unknown } | { kind: "timeout" } | { kind: "cancelled" };

/** Waits for `result`, the deadline, or the caller going away, whichever is first; never leaves a timer behind. */
function raceDeadline(result: Promise<string>, deadline: number, signal: AbortSignal): Promise<Raced> {
  return new Promise<Raced>((resolve) => {
    if (signal.aborted) {
      resolve({ kind: "cancelled" });
      return;
    }
    const done = (r: Raced): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve(r);
    };
    const onAbort = (): void => done(Date.now() >= deadline ? { kind: "timeout" } : { kind: "cancelled" });
    const timer = setTimeout(() => done({ kind: "timeout" }), Math.max(0, deadline - Date.now()));
    signal.addEventListener("abort", onAbort, { once: true });
    result.then(
      (value) => done({ kind: "value", value }),
      (error: unknown) => done({ kind: "error", error }),
    );
  });
}
