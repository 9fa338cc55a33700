import { performance } from "node:perf_hooks";
import { status as Status } from "@grpc/grpc-js";
import type { Span } from "@opentelemetry/api";
import type { CallContext } from "../core/call-context.js";
import { ServingError, invalidArgument, notFound } from "../core/errors.js";
import { InFlight, KeySpace, type InFlightOutcome, type PredictionCache } from "./cache.js";
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

/**
 * Where an app's queries go: its linked model at a version, or nowhere.
 * Built once per catalog entry and version, with what every query to it
 * needs (cache keys, metrics) resolved up front.
 */
export interface Target {
  readonly app: CatalogApp;
  readonly model: string;
  /** "" when no version could be resolved (the default answers at once). */
  readonly version: string;
  /** Cache keys of the model version. */
  readonly keys: KeySpace;
  /** The app's metrics for this model version. */
  readonly instruments: AppInstruments;
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
  /** The last target built per catalog entry; a catalog change brings a new entry, so stale ones are never found. */
  readonly #targets = new WeakMap<CatalogApp, Target>();
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
      return this.#targetOf(app, "", "");
    }
    if (pinnedVersion !== "") {
      if (this.#catalog.model(model, pinnedVersion) === undefined) {
        throw invalidArgument("MODEL_NOT_FOUND", `Requested version: ${pinnedVersion} does not exist for model: ${model}`);
      }
      return this.#targetOf(app, model, pinnedVersion);
    }
    return this.#targetOf(app, model, this.#catalog.currentVersion(model) ?? "");
  }

  /** `app`'s target at `version` of `model` (always the app's first linked model, or "" with no version). */
  #targetOf(app: CatalogApp, model: string, version: string): Target {
    const last = this.#targets.get(app);
    if (last !== undefined && last.version === version) return last;
    const target: Target = { app, model, version, keys: new KeySpace(model, version), instruments: this.#metrics.app(app.name, model, version) };
    this.#targets.set(app, target);
    return target;
  }

  /** Answers one query whose input is already encoded for the target's input type. */
  async predict(target: Target, input: Buffer, ctx: CallContext): Promise<Prediction> {
    const start = performance.now();
    const m = target.instruments;
    try {
      const queryId = this.#nextQueryId++;
      const now = Date.now();
      const { app, model, version } = target;
      if (ctx.deadline <= now) throw deadlineExceeded();
      if (version === "") {
        m.defaulted("no_model");
        return answered(m, start, prediction(queryId, target, app.defaultOutput, NO_MODEL_EXPLANATION));
      }

      const traceContext = callTraceContext();
      const cacheSpan = startCacheSpan(traceContext, model, version);
      const key = target.keys.key(input);
      const cached = this.#cache.get(key);
      if (cached !== undefined) {
        this.#looked(cacheSpan, "hit");
        return answered(m, start, prediction(queryId, target, cached, ""));
      }
      if (this.#dispatcher.replicaCount(model, version) === 0) {
        this.#looked(cacheSpan, "miss");
        m.defaulted("no_replica");
        return answered(m, start, prediction(queryId, target, app.defaultOutput, NO_MODEL_EXPLANATION));
      }

      const sloDeadline = now + app.latencySloMicros / 1000;
      const deadline = Math.min(sloDeadline, ctx.deadline);
      let outcome: Raced;
      let task: Query | null = null;
      for (let lookup = 0; ; lookup++) {
        const joined = this.#inFlight.join(key);
        if (lookup === 0) this.#looked(cacheSpan, joined.kind === "follower" ? "coalesced" : "miss");
        task = null;
        const wait = new Wait();
        if (joined.kind === "follower") {
          joined.promise.then(
            (value) => wait.settle({ kind: "value", value }),
            (error: unknown) => wait.settle({ kind: "error", error }),
          );
        } else {
          task = new Query(this.#cache, key, model, version, input, deadline, ctx.metadata.get("traceparent") ?? "", traceContext, joined, wait);
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
            return answered(m, start, prediction(queryId, target, app.defaultOutput, NO_MODEL_EXPLANATION));
          }
        }
        outcome = await wait.until(deadline, ctx);
        if (outcome.kind === "error" && isLost(outcome.error)) {
          // The query this one shared was given up by its own caller, or was
          // dropped before a replica could run it: while this caller still has
          // time, it asks again (as the new leader if nobody else has).
          if (task === null && Date.now() < deadline) continue;
          outcome = TIMEOUT;
        }
        break;
      }
      if (outcome.kind === "value") return answered(m, start, prediction(queryId, target, outcome.value, ""));
      if (outcome.kind === "error") throw outcome.error;
      if (task !== null) {
        const t = task as Query;
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
      return answered(m, start, prediction(queryId, target, app.defaultOutput, SLO_EXPLANATION));
    } catch (err) {
      m.answered(err instanceof ServingError && err.reason === "QUEUE_FULL" ? "shed" : "error", start);
      throw err;
    }
  }

  /** Counts a cache lookup and ends its span. */
  #looked(span: Span | null, result: CacheResult): void {
    this.#metrics.cacheLookup(result);
    endCacheSpan(span, result);
  }
}

/** A query's answer; `explanation` is "" for a model output, else why the default was given. */
function prediction(queryId: number, target: Target, output: string, explanation: string): Prediction {
  return { queryId, output, isDefault: explanation !== "", defaultExplanation: explanation, model: target.model, modelVersion: target.version };
}

/** Counts and times an answered query. */
function answered(m: AppInstruments, start: number, p: Prediction): Prediction {
  m.answered(p.isDefault ? "default" : "ok", start);
  return p;
}

/** The task a leading query enqueues: its answer fills the cache and reaches the callers sharing it. */
class Query implements Task {
  readonly deadline: number;
  settled = false;
  readonly input: Buffer;
  readonly traceparent: string;
  readonly traceContext: Task["traceContext"];
  queueSpan: Task["queueSpan"] = null;
  enqueuedAt = 0;
  attempts = 0;
  readonly #cache: PredictionCache;
  readonly #key: string;
  readonly #model: string;
  readonly #version: string;
  /** The hold on the key that callers with the same input share. */
  readonly #shared: { settle(outcome: InFlightOutcome<string>): void };
  readonly #wait: Wait;

  constructor(
    cache: PredictionCache,
    key: string,
    model: string,
    version: string,
    input: Buffer,
    deadline: number,
    traceparent: string,
    traceContext: Task["traceContext"],
    shared: { settle(outcome: InFlightOutcome<string>): void },
    wait: Wait,
  ) {
    this.#cache = cache;
    this.#key = key;
    this.#model = model;
    this.#version = version;
    this.input = input;
    this.deadline = deadline;
    this.traceparent = traceparent;
    this.traceContext = traceContext;
    this.#shared = shared;
    this.#wait = wait;
  }

  complete(outcome: TaskOutcome): void {
    if (outcome.ok) {
      // Late answers still fill the cache (Clipper semantics).
      this.#cache.put(this.#key, outcome.output);
      this.#shared.settle({ ok: true, value: outcome.output });
      this.#wait.settle({ kind: "value", value: outcome.output });
      return;
    }
    const err = outcome.code === Status.CANCELLED && outcome.message === ABANDONED_MESSAGE
      ? abandoned()
      : outcome.code === Status.DEADLINE_EXCEEDED
        ? new ServingError(Status.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", outcome.message)
        : new ServingError(outcome.code === 0 ? Status.INTERNAL : outcome.code, "MODEL_ERROR", `model ${this.#model}:${this.#version} failed: ${outcome.message}`);
    this.#shared.settle({ ok: false, error: err });
    this.#wait.settle({ kind: "error", error: err });
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

const TIMEOUT: Raced = { kind: "timeout" };
const CANCELLED: Raced = { kind: "cancelled" };

/**
 * One caller's wait for an answer, the deadline or the caller going away,
 * whichever is first; it never leaves a timer or listener behind. It can be
 * settled before it starts waiting (a task completed while being queued).
 */
class Wait {
  readonly #promise: Promise<Raced>;
  #resolve!: (outcome: Raced) => void;
  #done = false;
  #timer: NodeJS.Timeout | null = null;
  #stopListening: (() => void) | null = null;

  constructor() {
    this.#promise = new Promise<Raced>((resolve) => {
      this.#resolve = resolve;
    });
  }

  settle(outcome: Raced): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#stopListening?.();
    this.#resolve(outcome);
  }

  /** Starts timing `deadline` and watching the caller, unless already settled; resolves with the first outcome. */
  until(deadline: number, ctx: CallContext): Promise<Raced> {
    if (this.#done) return this.#promise;
    // onCancel calls back at once if the caller has already gone, which settles this.
    const stop = ctx.onCancel !== undefined ? ctx.onCancel(() => this.#callerGone(deadline)) : this.#watchSignal(ctx.signal, deadline);
    if (this.#done) return this.#promise;
    this.#stopListening = stop;
    this.#timer = setTimeout(timedOut, Math.max(0, deadline - Date.now()), this);
    return this.#promise;
  }

  /** The caller went away, or (through the signal) its deadline passed. */
  #callerGone(deadline: number): void {
    this.settle(Date.now() >= deadline ? TIMEOUT : CANCELLED);
  }

  /** For contexts without onCancel. */
  #watchSignal(signal: AbortSignal, deadline: number): () => void {
    if (signal.aborted) {
      this.settle(CANCELLED);
      return noop;
    }
    const onAbort = (): void => this.#callerGone(deadline);
    signal.addEventListener("abort", onAbort, { once: true });
    return () => signal.removeEventListener("abort", onAbort);
  }
}

function noop(): void {}

function timedOut(wait: Wait): void {
  wait.settle(TIMEOUT);
}
