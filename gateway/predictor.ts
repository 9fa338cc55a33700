import { performance } from "node:perf_hooks";
import { status as Status } from "@grpc/grpc-js";
import type { Span } from "@opentelemetry/api";
import type { CallContext } from "../core/call-context.js";
import { RETRY_AFTER_HEADERS, RETRY_AFTER_SECONDS, ServingError, failedPrecondition, invalidArgument, notFound, unavailable } from "../core/errors.js";
import { InFlight, KeySpace, type CacheKey, type InFlightOutcome, type PredictionCache } from "./cache.js";
import type { Catalog, CatalogApp } from "./catalog.js";
import type { Dispatcher } from "./dispatcher.js";
import type { AppInstruments, CacheResult, GatewayMetrics } from "./metrics.js";
import { callTraceContext, endCacheSpan, endQueueSpan, startCacheSpan } from "./spans.js";
import type { Task, TaskOutcome } from "./task.js";

/** Clipper's explanations for a default output (clipper.md §3.4). */
export const NO_MODEL_EXPLANATION = "No connected models found for query";
export const SLO_EXPLANATION = "Failed to retrieve a prediction response within the specified latency SLO";

/** What the predictor reads of the catalog. */
export type AppDirectory = Pick<Catalog, "app" | "brokenApp" | "model" | "currentVersion" | "policy" | "loaded">;

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
  readonly #catalog: AppDirectory;
  readonly #dispatcher: Dispatcher;
  readonly #cache: PredictionCache;
  readonly #inFlight = new InFlight<TaskOutcome>();
  readonly #metrics: GatewayMetrics;
  /** The last target built per catalog entry; a catalog change brings a new entry, so stale ones are never found. */
  readonly #targets = new WeakMap<CatalogApp, Target>();
  #nextQueryId = 0;

  constructor(catalog: AppDirectory, dispatcher: Dispatcher, cache: PredictionCache, metrics: GatewayMetrics) {
    this.#catalog = catalog;
    this.#dispatcher = dispatcher;
    this.#cache = cache;
    this.#metrics = metrics;
  }

  /** The app and the model version its queries go to; errors for unknown apps and versions. */
  target(appName: string, pinnedVersion: string): Target {
    const app = this.#catalog.app(appName);
    if (app === undefined) {
      const broken = this.#catalog.brokenApp(appName);
      if (broken !== undefined) throw failedPrecondition("APP_MISCONFIGURED", `application '${appName}' cannot be served: ${broken}; fix or re-create it (clipper apps delete / create)`);
      // A gateway just started (or restarted) knows no app until its first
      // load from Redis: "not found" then would be a wrong answer a caller
      // acts on, where a retry in a moment is the right one.
      if (!this.#catalog.loaded) throw unavailable("STORE_UNAVAILABLE", `the gateway has not loaded its catalog from Redis yet, so application '${appName}' is not known yet; retry shortly`);
      throw notFound("APP_NOT_FOUND", `No application with name '${appName}' exists.`);
    }
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
      const p = await this.#answer(target, input, ctx);
      m.answered(p.isDefault ? "default" : "ok", start);
      return p;
    } catch (err) {
      m.answered(err instanceof ServingError && (err.reason === "QUEUE_FULL" || err.reason === "OVERLOADED") ? "shed" : "error", start);
      throw err;
    }
  }

  /** Catalog → cache → queue, each step answering when it can. */
  async #answer(target: Target, input: Buffer, ctx: CallContext): Promise<Prediction> {
    const queryId = this.#nextQueryId++;
    const now = Date.now();
    const { app, model, version } = target;
    const m = target.instruments;
    if (ctx.deadline <= now) throw deadlineExceeded();
    if (version === "") {
      m.defaulted("no_model");
      return prediction(queryId, target, app.defaultOutput, NO_MODEL_EXPLANATION);
    }

    const traceContext = callTraceContext();
    const cacheSpan = startCacheSpan(traceContext, model, version);
    // The model version's own policy (a stochastic model turns both off).
    const policy = this.#catalog.policy(model, version);
    const key = target.keys.key(input);
    const cached = policy.cache ? this.#cache.get(key) : undefined;
    if (cached !== undefined) {
      this.#looked(cacheSpan, "hit");
      return prediction(queryId, target, cached, "");
    }
    if (this.#dispatcher.replicaCount(model, version) === 0) {
      this.#looked(cacheSpan, "miss");
      m.defaulted("no_replica");
      return prediction(queryId, target, app.defaultOutput, NO_MODEL_EXPLANATION);
    }

    const sloDeadline = now + app.latencySloMicros / 1000;
    const ask: Ask = {
      target,
      key,
      input,
      deadline: Math.min(sloDeadline, ctx.deadline),
      sloDeadline,
      ctx,
      traceContext,
    };
    let ending: Ending;
    for (let lookup = 0; ; lookup++) {
      const joined = policy.coalesce ? this.#inFlight.join(key) : ALONE;
      if (lookup === 0) this.#looked(cacheSpan, joined.kind === "follower" ? "coalesced" : "miss");
      if (joined.kind === "leader") {
        ending = await this.#lead(joined, ask);
        break;
      }
      ending = await follow(joined.promise, ask);
      // The query this caller shared was given up by its own caller, or was
      // not run before its deadline: while this caller still has time, it
      // asks again (as the new leader if nobody else has).
      if (!(ending.kind === "answer" && isLost(ending.outcome) && Date.now() < ask.deadline)) break;
    }
    return this.#conclude(queryId, ask, ending);
  }

  /**
   * Runs the query for everyone sharing its input: enqueues it, waits, and
   * if its own caller gives up first (cancelled, or its own deadline before
   * the SLO), abandons it so the callers sharing it ask again.
   */
  async #lead(lead: Leader, ask: Ask): Promise<Ending> {
    const { model, version } = ask.target;
    const wait = new Wait();
    const query = new Query(this.#catalog.policy(model, version).cache ? this.#cache : null, ask, lead, wait);
    const queued = this.#dispatcher.enqueue(model, version, query);
    if (queued === "full" || queued === "overloaded") {
      const shed = queued === "full" ? SHED : SHED_OVERLOADED;
      lead.settle({ ok: true, value: shed });
      return { kind: "answer", outcome: shed };
    }
    if (queued === "no-replica") {
      lead.settle({ ok: true, value: ABANDONED });
      return NO_REPLICA;
    }
    const ending = await wait.until(ask.deadline, ask.ctx);
    if (ending.kind === "answer" && !isLost(ending.outcome)) return ending;
    if (ending.kind === "cancelled" || ask.deadline < ask.sloDeadline) {
      // Nobody waits for this query any more: the dispatcher skips it.
      query.settled = true;
      query.complete(ABANDONED);
      endQueueSpan(query, "abandoned");
    }
    return ending.kind === "cancelled" ? ending : TIMEOUT;
  }

  /** The caller's answer for how its query ended: the model's output, an error, or the app's default. */
  #conclude(queryId: number, ask: Ask, ending: Ending): Prediction {
    const { target } = ask;
    const where = `${target.model}:${target.version}`;
    switch (ending.kind) {
      case "no-replica":
        target.instruments.defaulted("no_replica");
        return prediction(queryId, target, target.app.defaultOutput, NO_MODEL_EXPLANATION);
      case "cancelled":
        throw new ServingError(Status.CANCELLED, "CANCELLED", "the caller cancelled the call");
      case "timeout":
        if (ask.deadline < ask.sloDeadline) throw deadlineExceeded();
        target.instruments.defaulted("slo");
        return prediction(queryId, target, target.app.defaultOutput, SLO_EXPLANATION);
      case "answer":
        break;
    }
    const outcome = ending.outcome;
    switch (outcome.kind) {
      case "value":
        return prediction(queryId, target, outcome.output, "");
      case "failed":
        throw new ServingError(outcome.code === Status.OK ? Status.INTERNAL : outcome.code, "MODEL_ERROR", `model ${where} failed: ${outcome.message}`);
      case "shed":
        if (outcome.overloaded === true) {
          throw new ServingError(
            Status.RESOURCE_EXHAUSTED,
            "OVERLOADED",
            `model ${where} is overloaded: the queries ahead of this one would not be answered before its deadline; retry in ${RETRY_AFTER_SECONDS} s or add replicas`,
            { headers: RETRY_AFTER_HEADERS },
          );
        }
        throw new ServingError(Status.RESOURCE_EXHAUSTED, "QUEUE_FULL", `the queue of model ${where} is full; retry in ${RETRY_AFTER_SECONDS} s or add replicas`, {
          headers: RETRY_AFTER_HEADERS,
        });
      case "removed":
        throw new ServingError(Status.UNAVAILABLE, "MODEL_ERROR", `model ${where} was deleted while the query waited`);
      case "expired":
      case "abandoned":
        // A follower out of time to ask again.
        return this.#conclude(queryId, ask, TIMEOUT);
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

/** What one caller asks: everything its query needs past the cache. */
interface Ask {
  readonly target: Target;
  /** Its cache and coalescing key. */
  readonly key: CacheKey;
  readonly input: Buffer;
  /** When its answer is due: the earlier of the app's SLO and the caller's own deadline. */
  readonly deadline: number;
  readonly sloDeadline: number;
  readonly ctx: CallContext;
  readonly traceContext: Task["traceContext"];
}

/** A leading caller's hold on its key: what it settles, everyone sharing the input gets. */
type Leader = { settle(outcome: InFlightOutcome<TaskOutcome>): void };

/** The lead of a query nobody else may share (its model version does not coalesce). */
const ALONE = { kind: "leader", settle: () => {} } as const satisfies Leader & { kind: "leader" };

/** How one caller's wait ended. */
type Ending = { readonly kind: "answer"; readonly outcome: TaskOutcome } | { readonly kind: "timeout" } | { readonly kind: "cancelled" } | { readonly kind: "no-replica" };

const TIMEOUT: Ending = { kind: "timeout" };
const CANCELLED: Ending = { kind: "cancelled" };
const NO_REPLICA: Ending = { kind: "no-replica" };
const SHED: TaskOutcome = { kind: "shed" };
const SHED_OVERLOADED: TaskOutcome = { kind: "shed", overloaded: true };
const ABANDONED: TaskOutcome = { kind: "abandoned" };

/** Outcomes that mean "no answer is coming for the shared query" rather than an answer. */
function isLost(outcome: TaskOutcome): boolean {
  return outcome.kind === "expired" || outcome.kind === "abandoned";
}

/** Waits for the outcome of the query another caller leads. */
function follow(shared: Promise<TaskOutcome>, ask: Ask): Promise<Ending> {
  const wait = new Wait();
  void shared.then((outcome) => wait.settle({ kind: "answer", outcome }));
  return wait.until(ask.deadline, ask.ctx);
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
  /** Null when the model version's answers are not to be stored. */
  readonly #cache: PredictionCache | null;
  readonly #key: CacheKey;
  readonly #shared: Leader;
  readonly #wait: Wait;

  constructor(cache: PredictionCache | null, ask: Ask, shared: Leader, wait: Wait) {
    this.#cache = cache;
    this.#key = ask.key;
    this.input = ask.input;
    this.deadline = ask.deadline;
    this.traceparent = ask.ctx.metadata.get("traceparent") ?? "";
    this.traceContext = ask.traceContext;
    this.#shared = shared;
    this.#wait = wait;
  }

  complete(outcome: TaskOutcome): void {
    // Late answers still fill the cache (Clipper semantics).
    if (outcome.kind === "value") this.#cache?.put(this.#key, outcome.output);
    this.#shared.settle({ ok: true, value: outcome });
    this.#wait.settle({ kind: "answer", outcome });
  }
}

function deadlineExceeded(): ServingError {
  return new ServingError(Status.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "the call's deadline passed before the model answered");
}

/**
 * One caller's wait for an answer, the deadline or the caller going away,
 * whichever is first; it never leaves a timer or listener behind. It can be
 * settled before it starts waiting (a task completed while being queued).
 */
class Wait {
  readonly #promise: Promise<Ending>;
  #resolve!: (ending: Ending) => void;
  #done = false;
  #timer: NodeJS.Timeout | null = null;
  #stopListening: (() => void) | null = null;

  constructor() {
    this.#promise = new Promise<Ending>((resolve) => {
      this.#resolve = resolve;
    });
  }

  settle(ending: Ending): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#stopListening?.();
    this.#resolve(ending);
  }

  /** Starts timing `deadline` and watching the caller, unless already settled; resolves with the first ending. */
  until(deadline: number, ctx: CallContext): Promise<Ending> {
    if (this.#done) return this.#promise;
    // onCancel calls back at once if the caller has already gone, which settles this.
    const stop = ctx.onCancel(() => this.#callerGone(deadline));
    if (this.#done) return this.#promise;
    this.#stopListening = stop;
    this.#timer = setTimeout(timedOut, Math.max(0, deadline - Date.now()), this);
    return this.#promise;
  }

  /** The caller went away; past its deadline that is a timeout, not a cancellation. */
  #callerGone(deadline: number): void {
    this.settle(Date.now() >= deadline ? TIMEOUT : CANCELLED);
  }
}


function timedOut(wait: Wait): void {
  wait.settle(TIMEOUT);
}
