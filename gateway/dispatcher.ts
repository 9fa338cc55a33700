import { status } from "@grpc/grpc-js";
import { performance } from "node:perf_hooks";
import type { Logger } from "../core/telemetry/logger.js";
import { endSpan } from "../core/telemetry/tracing.js";
import { AdmissionShare, BUSY_TO_REFUSE, BusyShare, drainEstimate, predictedWaitMs, type DrainEstimate, type ReplicaCapacity } from "./admission.js";
import { budgetMs as budgetOf, chooseBatchSize, choosePlan, isDoomed } from "./batch-sizer.js";
import type { DropReason, GatewayMetrics, PoolInstruments } from "./metrics.js";
import { ModelErrorLog } from "./model-error-log.js";
import { DeadlineQueue } from "./queue.js";
import { poolKey, type RemovalReason, type Replica, type SentBatch } from "./replica.js";
import type { ReplicaRegistry } from "./replica-registry.js";
import type { BatchAnswers } from "./rpc/dialect.js";
import { endQueueSpan, startBatchSpan, startQueueSpan } from "./spans.js";
import type { Task, TaskOutcome } from "./task.js";

/** Shortest useful hold for returning callers, in ms: Node timers have 1 ms resolution. */
const MIN_HOLD_MS = 1;

/** Longest delay a Node timer takes; a longer one would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Weight of the newest turnaround sample in its moving average. */
const TURNAROUND_SMOOTHING = 0.2;

/** A batch times out after this many times its replica's latency estimate for its size… */
export const BATCH_TIMEOUT_MULTIPLE = 10;
/** …but never sooner than this, in ms (a cold replica's estimate is noise)… */
export const BATCH_TIMEOUT_FLOOR_MS = 1_000;
/** …and never later than the gateway's cap (`--batch-timeout-ms`), by default this, in ms. */
export const DEFAULT_BATCH_TIMEOUT_MS = 30_000;

/**
 * How long a batch of `size` may run on a replica before it counts as hung:
 * a multiple of the replica's own latency estimate, at least the floor, at
 * most the cap (the cap alone while the replica has no estimate).
 */
export function batchTimeoutMs(estimateMs: number, capMs: number): number {
  const derived = Math.max(BATCH_TIMEOUT_FLOOR_MS, BATCH_TIMEOUT_MULTIPLE * estimateMs);
  return Number.isFinite(derived) ? Math.min(capMs, derived) : capMs;
}

export interface DispatcherOptions {
  /** Tasks one model version's queue holds before refusing (RESOURCE_EXHAUSTED). */
  readonly queueCapacity: number;
  /** Fixed batch-size cap of a model version, or -1 for adaptive (from the catalog). */
  readonly batchSizeOf: (name: string, version: string) => number;
  /** Queue, batch and replica metrics. */
  readonly metrics: GatewayMetrics;
  /**
   * Longest a free replica may wait for the callers whose answers just went
   * out to ask again, so their queries join the next batch, in ms; 0 never
   * waits. See {@link Dispatcher} on delayed batching.
   */
  readonly maxBatchWaitMs?: number;
  /** Most a batch may run before its replica is quarantined and its items run elsewhere, in ms (see {@link batchTimeoutMs}). */
  readonly batchTimeoutMs?: number;
  /** Shortest time between two log lines about one model version's errors, in ms (gateway/model-error-log.ts). */
  readonly modelErrorLogIntervalMs?: number;
  readonly now?: () => number;
}

const REMOVED: TaskOutcome = { kind: "removed" };
const SHED: TaskOutcome = { kind: "shed" };

/**
 * Result of offering a task to a model version: queued; refused because
 * the queue is at capacity ("full") or because the queries ahead are
 * predicted to outlast its deadline ("overloaded", gateway/admission.ts);
 * or no replica serves it.
 */
export type EnqueueResult = "queued" | "full" | "overloaded" | "no-replica";

/** How long one drain estimate serves admission before it is made again, ms: latency models move slowly, enqueues come by the thousand. */
const DRAIN_ESTIMATE_TTL_MS = 20;

interface Pool {
  readonly name: string;
  readonly version: string;
  readonly queue: DeadlineQueue<Task>;
  /**
   * Tasks to run again in batches of their own, oldest first, ahead of the
   * queue: parts of a batch whose model call failed as a whole, or whose
   * replica was lost. Each part is sent alone, never mixed with queued
   * tasks, so an input at fault cannot fail new neighbours.
   */
  readonly parts: Task[][];
  readonly replicas: Set<Replica>;
  readonly metrics: PoolInstruments;
  /** Set while dispatch waits for returning callers (delayed batching). */
  hold: NodeJS.Timeout | null;
  /** Queue length at which a hold ends early. */
  holdTarget: number;
  /** Items of the batch answered last: callers likely to ask again soon. */
  returning: number;
  /** Queries ever offered to this queue; counts arrivals for the turnaround probe. */
  arrivals: number;
  /** Set after a batch is answered: when, and the arrival count at which that many new queries have come in. */
  probe: { at: number; until: number; items: number } | null;
  /**
   * Moving average of the time per query for as many new queries as a batch
   * had to arrive after it was answered, ms; NaN until measured. Closed-loop
   * callers turn around in about this time each; for open-loop traffic it
   * is the inverse arrival rate. Either way, returning × this is the wait a
   * hold for `returning` queries should expect.
   */
  turnaroundMsPerQuery: number;
  /** How much of its budget a query's predicted wait may take, corrected by how admitted queries ended (gateway/admission.ts). */
  readonly admission: AdmissionShare;
  /** How busy the workers report its replicas have been (gateway/admission.ts); admission refuses by predicted wait only while they are busy. */
  readonly busy: BusyShare;
  /** Drain estimates admission uses, per budget class, and when each was made (gateway/admission.ts); cleared when the replicas change. */
  readonly drain: Map<number, { readonly at: number; readonly estimate: DrainEstimate }>;
  /**
   * Set when the owner asked to forget this pool while tasks a leaving
   * replica put back were still queued and no replica was left: it is
   * forgotten once they are gone. The timer wakes at the earliest live
   * deadline, as no replica will take them off the queue.
   */
  forget: { timer: NodeJS.Timeout | null } | null;
}

/**
 * Queues per model version and the replicas that pull from them. A replica
 * with a free slot takes the largest batch its latency model expects to
 * finish before the earliest deadline in the queue; answers free the slot
 * and pull again. Batches of a replica that leaves are put back in the
 * queue while their deadlines allow, so another replica serves them.
 * It follows the registry's replicas, sends batches through each replica's
 * own link, and is where the worker RPC delivers answers.
 */
export class Dispatcher implements BatchAnswers {
  readonly #pools = new Map<string, Pool>();
  readonly #registry: ReplicaRegistry;
  readonly #log: Logger;
  readonly #options: DispatcherOptions;
  readonly #now: () => number;
  readonly #modelErrors: ModelErrorLog;
  /** Times in a row a task's replica was lost while running it (see {@link Dispatcher#batchLost}). */
  readonly #losses = new WeakMap<Task, number>();
  #nextBatchId = 0;
  /** Pools with work or free replicas, dispatched on the next microtask. */
  readonly #pending = new Set<Pool>();
  #scheduled = false;

  constructor(registry: ReplicaRegistry, log: Logger, options: DispatcherOptions) {
    this.#registry = registry;
    this.#log = log;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#modelErrors = new ModelErrorLog(log, options.modelErrorLogIntervalMs);
    registry.on("added", (r) => {
      const pool = this.#pool(r.modelName, r.modelVersion);
      pool.replicas.add(r);
      pool.drain.clear();
      // A replica came back in time: its version lives on, and its owner asks again when it leaves.
      this.#keep(pool);
      this.#schedule(pool);
    });
    registry.on("removed", (r, reason) => this.#replicaGone(r, reason));
  }

  /** Serving replicas of a model version (not draining, not quarantined). */
  replicaCount(name: string, version: string): number {
    let n = 0;
    for (const r of this.#pools.get(poolKey(name, version))?.replicas ?? []) if (r.serving) n++;
    return n;
  }

  /** Queries waiting, per model version (for the queue depth gauge). */
  *queueDepths(): Generator<{ model: string; version: string; depth: number }> {
    for (const p of this.#pools.values()) yield { model: p.name, version: p.version, depth: p.queue.size + p.parts.reduce((n, part) => n + part.length, 0) };
  }

  /** Offers a task to a model version's queue. */
  enqueue(name: string, version: string, task: Task): EnqueueResult {
    const pool = this.#pools.get(poolKey(name, version));
    if (pool === undefined || this.replicaCount(name, version) === 0) return "no-replica";
    if (this.#predictedLate(pool, task)) {
      pool.admission.refused();
      pool.metrics.dropped("overloaded");
      return "overloaded";
    }
    if (!pool.queue.push(task)) {
      pool.metrics.dropped("full");
      return "full";
    }
    pool.admission.admitted();
    task.enqueuedAt = performance.now();
    startQueueSpan(task, name, version);
    pool.arrivals++;
    if (pool.probe !== null && pool.arrivals >= pool.probe.until) {
      const sample = (task.enqueuedAt - pool.probe.at) / pool.probe.items;
      pool.turnaroundMsPerQuery = Number.isNaN(pool.turnaroundMsPerQuery)
        ? sample
        : pool.turnaroundMsPerQuery + TURNAROUND_SMOOTHING * (sample - pool.turnaroundMsPerQuery);
      pool.probe = null;
    }
    if (pool.hold !== null && pool.queue.size >= pool.holdTarget) this.#endHold(pool);
    this.#schedule(pool);
    return "queued";
  }

  /**
   * True when the queries ahead of `task` are predicted to keep it past its
   * deadline (gateway/admission.ts).
   */
  #predictedLate(pool: Pool, task: Task): boolean {
    const now = this.#now();
    const budget = budgetOf(task.deadline, now);
    if (!(budget > 0 && Number.isFinite(budget))) return false;
    const estimate = this.#drainEstimate(pool, now, budget);
    if (estimate.itemsPerMs === 0) return false;
    // Ahead of it: the queue and parts to run again, once a slot frees.
    let ahead = pool.queue.size;
    for (const part of pool.parts) ahead += part.length;
    // With nothing queued ahead there is no overload to shed, whatever the
    // estimate says: alone, a query late by it is late because the model is
    // slow for its deadline (or its estimate is still cold), which no refusal
    // fixes. Under overload there is always a queue.
    if (ahead === 0) return false;
    // Nor while the replicas are mostly idle by their workers' own account:
    // then the estimate, not the load, is what is wrong (round two §18).
    if (!this.#replicasBusy(pool, now)) return false;
    return predictedWaitMs(ahead, estimate, this.#slotFreeMs(pool, now)) > pool.admission.value * budget;
  }

  /**
   * False when every serving replica reports its model's time (native
   * workers) and together they spent under {@link BUSY_TO_REFUSE} of their
   * slots' time on batches lately; true otherwise, including when nothing
   * is known (Clipper containers report no model time).
   */
  #replicasBusy(pool: Pool, now: number): boolean {
    let slots = 0;
    for (const r of pool.replicas) {
      if (!r.serving) continue;
      if (r.dialect !== "native") return true;
      slots += Math.max(1, r.slots);
    }
    const share = pool.busy.value(now, slots);
    return share === null || share >= BUSY_TO_REFUSE;
  }

  /** Largest batch `replica` may be sent: the model's fixed batch size, the worker's limit and its latency model's. */
  #batchCap(replica: Replica): number {
    const fixed = this.#options.batchSizeOf(replica.modelName, replica.modelVersion);
    return Math.min(fixed > 0 ? fixed : Infinity, replica.maxBatchSize, replica.latency.maxBatchSize);
  }

  /** Time until a serving replica of the pool has a free slot, by its latency estimate of the batches it runs (0 when one is free now). */
  #slotFreeMs(pool: Pool, now: number): number {
    let soonest = Infinity;
    for (const r of pool.replicas) {
      if (!r.serving) continue;
      if (r.inFlight.size < r.slots) return 0;
      for (const b of r.inFlight.values()) soonest = Math.min(soonest, b.sentAt + r.latency.expected(b.tasks.length) - now);
    }
    return Number.isFinite(soonest) ? Math.max(0, soonest) : 0;
  }

  /**
   * The pool's drain estimate for `budget`, made again once older than
   * {@link DRAIN_ESTIMATE_TTL_MS}. Estimates are kept per budget class
   * (steps of about 19 %): the batch a replica can run depends on the
   * budget, and callers with deadlines of their own differ from the SLO.
   */
  #drainEstimate(pool: Pool, now: number, budget: number): DrainEstimate {
    const bucket = Math.floor(Math.log2(budget) * 4);
    const kept = pool.drain.get(bucket);
    if (kept !== undefined && now - kept.at <= DRAIN_ESTIMATE_TTL_MS) return kept.estimate;
    const serving: ReplicaCapacity[] = [];
    for (const r of pool.replicas) if (r.serving) serving.push({ latency: r.latency, slots: r.slots, cap: this.#batchCap(r) });
    const estimate = drainEstimate(serving, budget);
    pool.drain.set(bucket, { at: now, estimate });
    return estimate;
  }

  /** Resolves a batch's tasks with a replica's answers and frees its slot. */
  batchAnswered(replica: Replica, batchId: number, outcomes: readonly TaskOutcome[], modelMs = 0, waitMs = 0): boolean {
    const batch = replica.inFlight.get(batchId);
    if (batch === undefined) return false;
    replica.lastModelMs = modelMs;
    replica.inFlight.delete(batchId);
    if (batch.timeout !== null) clearTimeout(batch.timeout);
    const restarts = replica.latency.restarts;
    // Time the batch waited in the worker behind another gateway's batches
    // is that gateway's load, not this replica's speed (never more than the
    // round trip, whatever a worker claims).
    const answeredAt = this.#now();
    const roundTripMs = answeredAt - batch.sentAt;
    replica.latency.observe(batch.tasks.length, roundTripMs - Math.min(waitMs, roundTripMs));
    const pool = this.#pools.get(replica.pool);
    if (replica.dialect === "native") pool?.busy.add(Math.min(modelMs + waitMs, roundTripMs), answeredAt);
    if (replica.latency.restarts !== restarts) this.#options.metrics.latencyModelRestarted(replica);
    this.#options.metrics.replica(replica).batchDuration.observe((performance.now() - batch.startedAt) / 1000);
    if (batch.span !== null) {
      batch.span.setAttribute("clipper.failed_items", outcomes.reduce((n, o) => n + (o.kind === "value" ? 0 : 1), 0));
      batch.span.end();
    }
    const answered: [Task, TaskOutcome][] = [];
    const retry: Task[] = [];
    batch.tasks.forEach((task, i) => {
      if (answeredAt > task.deadline && pool !== undefined) pool.admission.late();
      const outcome: TaskOutcome = outcomes[i] ?? { kind: "failed", code: status.INTERNAL, message: `replica answered ${outcomes.length} outputs for a batch of ${batch.tasks.length}` };
      if (outcome.kind === "failed" && outcome.wholeBatch === true && pool !== undefined) {
        // The model call failed for all its inputs together: with others in
        // the batch, the input at fault may be any of them, so they run again
        // in halves; alone, it is the one.
        if (batch.tasks.length > 1) {
          retry.push(task);
          return;
        }
        pool.metrics.poisonItems.inc();
      }
      answered.push([task, outcome]);
    });
    if (pool !== undefined && retry.length > 0) {
      pool.metrics.batchSplits.inc();
      this.#runAgain(pool, retry, "halves");
    }
    // The next batch goes out before this one's callers are answered, so
    // the model runs while the gateway writes those answers: under load the
    // queries of the next batch are already waiting, and answering dozens of
    // callers first left the model idle for milliseconds per batch.
    if (pool !== undefined) {
      const items = batch.tasks.length;
      pool.returning = items;
      if (pool.probe === null && items > 1) pool.probe = { at: performance.now(), until: pool.arrivals + items, items };
      this.#dispatch(pool);
    }
    for (const [task, outcome] of answered) {
      if (outcome.kind === "failed" && !task.settled) this.#modelErrors.report(replica.modelName, replica.modelVersion, outcome.message);
      task.complete(outcome);
    }
    return true;
  }

  /** Stops the timers of the model error log (the gateway is stopping); held-back lines are written. */
  close(): void {
    this.#modelErrors.close();
  }

  /**
   * Drops the state of a model version (its queue and metric series) once
   * it has no replica and nothing queued, whichever comes last; true when
   * it is gone now. Called for versions the catalog does not know, so a
   * peer registering made-up versions cannot grow the gateway's state for
   * good. Tasks that the last replica's leaving put back in the queue keep
   * it until each is answered or expires; a replica of that version that
   * registers meanwhile keeps it for good (its own leaving asks again).
   */
  forgetPool(name: string, version: string): boolean {
    const pool = this.#pools.get(poolKey(name, version));
    if (pool === undefined || pool.replicas.size > 0) return false;
    pool.forget ??= { timer: null };
    return this.#forgetIfIdle(pool);
  }

  /** Forgets a pool marked by {@link forgetPool} if its queue has emptied, else wakes at its next deadline to look again. */
  #forgetIfIdle(pool: Pool): boolean {
    const forget = pool.forget;
    if (forget === null || pool.replicas.size > 0) return false;
    if (forget.timer !== null) clearTimeout(forget.timer);
    forget.timer = null;
    // Settled and expired tasks leave only from the head, and without a replica nothing else takes them.
    const now = this.#now();
    pool.queue.take(0, now, (t) => this.#drop(pool, t, "expired"));
    // Parts waiting to run again expire the same way.
    let partsDeadline = Infinity;
    for (let i = pool.parts.length - 1; i >= 0; i--) {
      const live = pool.parts[i]!.filter((t) => {
        if (t.settled) return false;
        if (t.deadline > now) return true;
        this.#drop(pool, t, "expired");
        return false;
      });
      if (live.length === 0) pool.parts.splice(i, 1);
      else pool.parts[i] = live;
      for (const t of live) partsDeadline = Math.min(partsDeadline, t.deadline);
    }
    if (pool.queue.size > 0 || pool.parts.length > 0) {
      const next = Math.min(pool.queue.size > 0 ? pool.queue.earliestDeadline() : Infinity, partsDeadline);
      forget.timer = setTimeout(() => this.#forgetIfIdle(pool), Math.min(MAX_TIMER_MS, Math.max(0, next - now)));
      forget.timer.unref();
      return false;
    }
    if (pool.hold !== null) clearTimeout(pool.hold);
    this.#pools.delete(poolKey(pool.name, pool.version));
    this.#pending.delete(pool);
    this.#options.metrics.forgetVersion(pool.name, pool.version);
    return true;
  }

  /** Cancels a pending {@link forgetPool}. */
  #keep(pool: Pool): void {
    if (pool.forget?.timer != null) clearTimeout(pool.forget.timer);
    pool.forget = null;
  }

  /** A model version was deleted: its replicas leave and its queue empties (callers get defaults). */
  modelVersionRemoved(name: string, version: string): Replica[] {
    const pool = this.#pools.get(poolKey(name, version));
    if (pool === undefined) return [];
    const replicas = [...pool.replicas];
    for (const t of pool.queue.drain()) this.#drop(pool, t, "removed");
    for (const part of pool.parts.splice(0)) for (const t of part) if (!t.settled) this.#drop(pool, t, "removed");
    this.#forgetIfIdle(pool);
    return replicas;
  }

  #pool(name: string, version: string): Pool {
    const key = poolKey(name, version);
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      pool = {
        name,
        version,
        queue: new DeadlineQueue<Task>(this.#options.queueCapacity),
        parts: [],
        replicas: new Set(),
        metrics: this.#options.metrics.pool(name, version),
        hold: null,
        holdTarget: 0,
        returning: 0,
        arrivals: 0,
        probe: null,
        turnaroundMsPerQuery: Number.NaN,
        admission: new AdmissionShare(),
        busy: new BusyShare(this.#now()),
        drain: new Map(),
        forget: null,
      };
      this.#pools.set(key, pool);
    }
    return pool;
  }

  #replicaGone(replica: Replica, reason: RemovalReason): void {
    const pool = this.#pools.get(replica.pool);
    if (pool === undefined) return;
    pool.replicas.delete(replica);
    pool.drain.clear();
    const now = this.#now();
    let requeued = 0;
    for (const batch of replica.inFlight.values()) {
      if (batch.timeout !== null) clearTimeout(batch.timeout);
      endSpan(batch.span, "replica left before answering");
      // A replica that died or fell silent may have been killed by an input
      // of its batch (Clipper's containers exit when the model raises).
      if (reason === "evicted" || reason === "disconnected") {
        requeued += this.#batchLost(pool, batch);
        continue;
      }
      for (const task of batch.tasks) {
        if (task.settled) continue;
        if (task.deadline <= now) {
          this.#drop(pool, task, "expired");
        } else if (pool.queue.push(task)) {
          requeued++;
          task.enqueuedAt = performance.now();
          startQueueSpan(task, pool.name, pool.version);
        } else {
          this.#drop(pool, task, "full");
        }
      }
    }
    replica.inFlight.clear();
    if (requeued > 0) this.#log.info({ model: replica.modelName, version: replica.modelVersion, replicaId: replica.replicaId, requeued }, "re-dispatching batch of lost worker");
    this.#schedule(pool);
  }

  /**
   * A batch's replica was lost while running it, or the batch timed out.
   * Its tasks run again in halves, so an input that kills its replica takes
   * fewer neighbours along each time. A task lost twice in a row is sent
   * only alone from then on, and a task lost again while alone after that
   * is failed for good: one input that kills every replica it reaches
   * cannot take them all down in turn. Returns how many tasks will run again.
   */
  #batchLost(pool: Pool, batch: SentBatch): number {
    const twice: Task[] = [];
    const once: Task[] = [];
    for (const task of batch.tasks) {
      const losses = (this.#losses.get(task) ?? 0) + 1;
      this.#losses.set(task, losses);
      if (losses < 2) once.push(task);
      else if (batch.tasks.length > 1) twice.push(task);
      else if (!task.settled) {
        pool.metrics.poisonItems.inc();
        const message = `the replica running this input was lost or timed out ${losses} times in a row, the last time with no other input in the batch (the model may crash or hang on it); it is not sent again`;
        this.#modelErrors.report(pool.name, pool.version, message);
        task.complete({ kind: "failed", code: status.INTERNAL, message });
      }
    }
    if (batch.tasks.length > 1) pool.metrics.batchSplits.inc();
    return this.#runAgain(pool, once, "halves") + this.#runAgain(pool, twice, "singles");
  }

  /**
   * A batch ran past its timeout: its model may hang. Its replica is
   * quarantined (nothing new goes there, and its peer is asked to drain),
   * and its tasks run again elsewhere as for a lost replica, while their
   * deadlines allow. A late answer to it is ignored.
   */
  #batchTimedOut(replica: Replica, batch: SentBatch, ms: number): void {
    if (replica.inFlight.get(batch.id) !== batch) return;
    replica.inFlight.delete(batch.id);
    batch.timeout = null;
    endSpan(batch.span, "batch timed out");
    this.#registry.quarantine(replica, `a batch of ${batch.tasks.length} ran past its timeout of ${ms} ms`);
    const pool = this.#pools.get(replica.pool);
    if (pool === undefined) return;
    const again = this.#batchLost(pool, batch);
    this.#log.info({ model: replica.modelName, version: replica.modelVersion, replicaId: replica.replicaId, requeued: again }, "re-dispatching timed-out batch");
    this.#schedule(pool);
  }

  /**
   * Puts tasks to be run again as parts of their own (see {@link Pool.parts}):
   * two halves, or one part per task. Tasks nobody waits for are left out,
   * and those past their deadline are answered as expired (their callers
   * have had their answer already). Returns how many tasks will run again.
   */
  #runAgain(pool: Pool, tasks: readonly Task[], how: "halves" | "singles"): number {
    const now = this.#now();
    const live: Task[] = [];
    for (const t of tasks) {
      if (t.settled) continue;
      if (t.deadline <= now) this.#drop(pool, t, "expired");
      else live.push(t);
    }
    if (live.length === 0) return 0;
    if (how === "singles") {
      for (const t of live) pool.parts.push([t]);
    } else {
      const half = Math.ceil(live.length / 2);
      pool.parts.push(live.slice(0, half));
      if (half < live.length) pool.parts.push(live.slice(half));
    }
    for (const t of live) {
      t.enqueuedAt = performance.now();
      startQueueSpan(t, pool.name, pool.version);
    }
    this.#schedule(pool);
    return live.length;
  }

  /**
   * The next part to run again, at most `cap` tasks (the rest stay at the
   * head), without tasks nobody waits for or past their deadline; empty when
   * no part is left.
   */
  #nextPart(pool: Pool, now: number, cap: number): Task[] {
    for (;;) {
      const part = pool.parts.shift();
      if (part === undefined) return [];
      const live: Task[] = [];
      for (const t of part) {
        if (t.settled) continue;
        if (t.deadline <= now) this.#drop(pool, t, "expired");
        else live.push(t);
      }
      if (live.length === 0) continue;
      if (live.length > cap) pool.parts.unshift(live.slice(cap));
      return live.slice(0, cap);
    }
  }

  #schedule(pool: Pool): void {
    this.#pending.add(pool);
    if (this.#scheduled) return;
    this.#scheduled = true;
    // Coalesce a burst of enqueues into one dispatch pass, so batches form.
    queueMicrotask(() => {
      this.#scheduled = false;
      const pools = [...this.#pending];
      this.#pending.clear();
      for (const p of pools) this.#dispatch(p);
    });
  }

  #dispatch(pool: Pool): void {
    for (;;) {
      if (pool.parts.length === 0 && (pool.queue.size === 0 || pool.hold !== null)) return;
      const replica = this.#freeReplica(pool);
      if (replica === undefined) return;
      const now = this.#now();
      const cap = this.#batchCap(replica);
      if (pool.parts.length > 0) {
        const part = this.#nextPart(pool, now, Math.max(1, cap));
        if (part.length > 0) this.#send(pool, replica, part, now);
        continue;
      }
      const doomed = this.#takeDoomed(pool, replica, now);
      let tasks: Task[];
      if (pool.queue.size === 0) {
        if (doomed.length === 0) return;
        // Nothing that can still make its deadline is waiting, and this
        // replica is idle: run the late ones anyway. A late answer still
        // fills the cache, and the fresh measurement corrects a latency
        // estimate that a single slow batch left too high (otherwise no
        // batch would ever be sent again to correct it).
        tasks = doomed.slice(0, cap);
        for (const t of doomed.slice(cap)) this.#drop(pool, t, "doomed");
      } else {
        for (const t of doomed) this.#drop(pool, t, "doomed");
        const budgetMs = Math.max(0, budgetOf(pool.queue.earliestDeadline(), now));
        const size = chooseBatchSize({ model: replica.latency, queued: pool.queue.size, budgetMs, cap });
        if (this.#shouldHold(pool, replica, size, budgetMs, cap)) return;
        tasks = size < pool.queue.size ? this.#planBatch(pool, replica, now, cap) : pool.queue.take(Math.max(1, size), now, (t) => this.#drop(pool, t, "expired"));
        if (tasks.length === 0) return;
      }
      this.#send(pool, replica, tasks, now);
    }
  }

  /** Sends `tasks` to `replica` as one batch. */
  #send(pool: Pool, replica: Replica, tasks: Task[], now: number): void {
    const startedAt = performance.now();
    for (const t of tasks) {
      t.attempts++;
      pool.metrics.queueWait.observe((startedAt - t.enqueuedAt) / 1000);
      endQueueSpan(t);
    }
    const { span, wire } = startBatchSpan(tasks, replica);
    const batch: SentBatch = { id: this.#nextBatchId++, tasks, sentAt: now, startedAt, span, wire, timeout: null };
    this.#options.metrics.replica(replica).batchSize.observe(tasks.length);
    replica.inFlight.set(batch.id, batch);
    const capMs = this.#options.batchTimeoutMs;
    if (capMs !== undefined && capMs > 0) {
      const ms = batchTimeoutMs(replica.latency.predict(tasks.length), capMs);
      batch.timeout = setTimeout(() => this.#batchTimedOut(replica, batch, ms), ms);
      batch.timeout.unref();
    }
    const deadline = tasks.reduce((d, t) => Math.min(d, t.deadline), Infinity);
    void replica.link.sendBatch(replica, batch, deadline).then((sent) => {
      if (!sent && replica.inFlight.has(batch.id)) this.#registry.remove(replica, "disconnected");
    });
  }

  /**
   * Delayed batching. Closed-loop callers (each sends its next query when
   * the last is answered) otherwise settle into two alternating half-size
   * batches: while one half runs, the other queues, and a free replica takes
   * whatever is queued at once. When the batch just answered had more than
   * one item, its callers are likely to ask again soon; if the budget of the
   * earliest deadline still fits the larger batch plus the wait, the replica
   * may wait for them (ending early once the queue reaches the larger batch).
   *
   * Merging the two halves saves one run of the model's fixed cost per two
   * batches but idles the model while the answered callers turn around, so
   * it pays only when that turnaround is short: with 32 callers of a
   * 5 ms + 0.1 ms/item model, 16 callers return in ~1.5 ms and one batch of
   * 32 beats two of 16; with 128 callers, 64 take longer to return than
   * half a batch runs, and holding only idles the model. So the replica
   * holds only when the measured turnaround of that many queries
   * (`turnaroundMsPerQuery`) fits in the wait allowed: at most
   * `maxBatchWaitMs` and half of the model's own time on the last batch.
   * A lone caller (batch of 1) never waits, so latency at low load is
   * untouched, and neither does a model too cheap for merging to pay.
   */
  #shouldHold(pool: Pool, replica: Replica, size: number, budgetMs: number, cap: number): boolean {
    const returning = pool.returning;
    pool.returning = 0;
    if (returning < 2 || size < pool.queue.size) return false;
    // Merging two batches saves one run of the model; waiting longer than
    // half of the model's own time on the last batch does not pay. A cheap
    // model (under 2 ms), or one whose time is not reported (Clipper v3
    // containers), is never held: timers cannot wait less than 1 ms, and
    // the transport's round trip is not saved by merging.
    const waitMs = Math.min(this.#options.maxBatchWaitMs ?? 0, replica.lastModelMs / 2);
    if (!(waitMs >= MIN_HOLD_MS)) return false;
    // Unknown turnaround (NaN) holds: the first holds are how it is learned.
    if (returning * pool.turnaroundMsPerQuery > waitMs) return false;
    const target = chooseBatchSize({ model: replica.latency, queued: pool.queue.size + returning, budgetMs: budgetMs - waitMs, cap });
    if (target <= pool.queue.size) return false;
    pool.holdTarget = target;
    pool.hold = setTimeout(() => this.#endHold(pool), waitMs);
    pool.hold.unref();
    return true;
  }

  #endHold(pool: Pool): void {
    if (pool.hold === null) return;
    clearTimeout(pool.hold);
    pool.hold = null;
    this.#schedule(pool);
  }

  /**
   * More is queued than the next batch takes: looks at the head of the
   * queue (up to two batches' worth) and takes the batch {@link choosePlan}
   * picks. Head tasks the plan skips are answered at once as doomed; the
   * rest go back in the queue.
   */
  #planBatch(pool: Pool, replica: Replica, now: number, cap: number): Task[] {
    const limit = Math.min(cap, replica.latency.maxBatchSize);
    const head = pool.queue.take(2 * limit, now, (t) => this.#drop(pool, t, "expired"));
    const budgetsMs = head.map((t) => budgetOf(t.deadline, now));
    const plan = choosePlan({ model: replica.latency, budgetsMs, queued: head.length + pool.queue.size, cap });
    const end = plan.skip + Math.max(1, plan.size);
    for (const t of head.slice(0, plan.skip)) this.#drop(pool, t, "doomed");
    for (const t of head.slice(end)) pool.queue.push(t);
    return head.slice(plan.skip, end);
  }

  /**
   * Takes the head-of-queue tasks that even a one-item batch on this replica
   * is not expected to finish in time. Sizing the next batch by a deadline that is already
   * lost would shrink it to 1 and keep the queue behind for good; sizing it
   * by the first deadline that can still be met keeps batches large under
   * overload.
   */
  #takeDoomed(pool: Pool, replica: Replica, now: number): Task[] {
    const doomed: Task[] = [];
    while (pool.queue.size > 0 && isDoomed(replica.latency, budgetOf(pool.queue.earliestDeadline(), now))) {
      doomed.push(...pool.queue.take(1, now, (e) => this.#drop(pool, e, "expired")));
    }
    return doomed;
  }

  /**
   * A task left its queue without a batch. It is completed at once, so its
   * caller gets the default output (or DEADLINE_EXCEEDED) now rather than at
   * its deadline, and callers sharing it (identical inputs) are released.
   */
  #drop(pool: Pool, task: Task, reason: DropReason): void {
    pool.metrics.dropped(reason);
    if (reason === "expired" || reason === "doomed") pool.admission.late();
    endQueueSpan(task, reason);
    task.complete(
      reason === "removed" ? REMOVED
      : reason === "full" || reason === "overloaded" ? SHED
      : { kind: "expired", message: `the query could not be run before its deadline (${reason})` },
    );
  }

  /** The replica with a free slot and the fewest batches in flight. */
  #freeReplica(pool: Pool): Replica | undefined {
    let best: Replica | undefined;
    for (const r of pool.replicas) {
      if (r.hasFreeSlot && (best === undefined || r.inFlight.size < best.inFlight.size)) best = r;
    }
    return best;
  }
}
