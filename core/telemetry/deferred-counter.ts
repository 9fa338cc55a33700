/**
 * Counters for hot paths. prom-client's `inc()` on a labelled child hashes
 * the child's labels on every call: ~0.3 µs and a few hundred bytes of
 * garbage each, three times per prediction (bench/README.md, "Where the
 * time goes"). A deferred child adds to a plain number instead, and the sum
 * reaches prom-client when the counter is read: prom-client calls a
 * metric's `collect()` before every read (a scrape of /metrics, the
 * cluster aggregation of --processes, `registry.getMetricsAsJSON()`), so
 * every read sees every increment made before it, as with `inc()`.
 */
import { Counter, type CounterConfiguration, type LabelValues } from "prom-client";

/** One labelled child whose increments wait in a number until the counter is read. */
export class DeferredCount {
  readonly #child: Counter.Internal;
  #pending = 0;

  constructor(child: Counter.Internal) {
    this.#child = child;
  }

  /** Adds `by` (≥ 0, as prom-client requires of counters). */
  inc(by = 1): void {
    this.#pending += by;
  }

  /** Hands what was counted since the last flush to prom-client. */
  flush(): void {
    if (this.#pending === 0) return;
    this.#child.inc(this.#pending);
    this.#pending = 0;
  }
}

/** A prom-client Counter whose children are {@link DeferredCount}s, flushed whenever it is read. */
export class DeferredCounter<T extends string> {
  readonly counter: Counter<T>;
  readonly #children: DeferredCount[] = [];

  constructor(config: Omit<CounterConfiguration<T>, "collect">) {
    const children = this.#children;
    this.counter = new Counter<T>({
      ...config,
      collect() {
        for (const c of children) c.flush();
      },
    });
  }

  /**
   * A child for these labels. Each call makes one that lives as long as the
   * counter (it is flushed at every read), so callers make it once per
   * label set and keep it, as they would keep a prom-client child.
   */
  labels(labels: LabelValues<T>): DeferredCount {
    const child = new DeferredCount(this.counter.labels(labels));
    this.#children.push(child);
    return child;
  }
}
