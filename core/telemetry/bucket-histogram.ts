/**
 * A Prometheus histogram for hot paths. prom-client's `observe()` on a
 * labelled child re-validates and re-hashes the child's labels and
 * allocates on every call: 0.8–0.9 µs, three times per prediction, the
 * largest prom-client cost in the gateway's profiles (bench/README.md round
 * two §16). A child here is a bucket array: an observation is a binary
 * search and three additions (~0.05 µs), with no garbage.
 *
 * It is read the way prom-client reads its own metrics: the registry calls
 * `get()` (JSON, the cluster aggregation of --processes) or
 * `getForPromString()` (the text of /metrics), the same contract the
 * aggregate registry of prom-client's cluster module uses for the metrics it
 * builds. Both give exactly what a prom-client Histogram with the same
 * observations gives, byte for byte (test/core/bucket-histogram.test.ts
 * holds it to that).
 */
import type { LabelValues, MetricValueWithName, Registry } from "prom-client";

/** What {@link BucketHistogram} is built from: prom-client's Histogram options it supports. */
export interface BucketHistogramConfiguration<T extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly T[];
  /** Upper bounds, ascending; `+Inf` is implied. */
  readonly buckets: readonly number[];
  readonly registers: readonly Registry[];
}

/** Where a child reports its first observation since it was made, removed or reset. */
interface ChildOwner {
  exported(child: BucketHistogramChild): void;
}

/**
 * One labelled child: counts per bucket, the sum and the count. Like a
 * prom-client child, it is exported from its first observation on, and after
 * its histogram's `remove` or `reset` it starts again from zero.
 */
export class BucketHistogramChild {
  readonly labels: Readonly<Record<string, string | number>>;
  /** @internal the histogram's key for these labels */
  readonly key: string;
  readonly #bounds: readonly number[];
  readonly #owner: ChildOwner;
  /** @internal false until the first observation since it was made, removed or reset */
  exported = false;
  /** Observations per bucket (not cumulative); the last slot holds those above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  /** @internal made by {@link BucketHistogram.labels} */
  constructor(labels: Readonly<Record<string, string | number>>, key: string, bounds: readonly number[], owner: ChildOwner) {
    this.labels = labels;
    this.key = key;
    this.#bounds = bounds;
    this.#owner = owner;
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Observes `value`; like prom-client, a value that is not a finite number is a TypeError. */
  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    if (!this.exported) this.#owner.exported(this);
    // The first bucket whose upper bound is ≥ value (prom-client's `value <= bound`).
    const bounds = this.#bounds;
    let lo = 0;
    let hi = bounds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (value <= bounds[mid]!) hi = mid;
      else lo = mid + 1;
    }
    this.counts[lo]! += 1;
    this.sum += value;
    this.count += 1;
  }

  /** @internal removed or reset: unexported, and back to zero */
  clear(): void {
    this.exported = false;
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** A value as prom-client's registry formats it: `labels` first, then `sharedLabels` (a histogram's own labels after `le`). */
interface ExportValue extends MetricValueWithName<string> {
  readonly sharedLabels: LabelValues<string>;
}

/** A histogram as the registry reads it (prom-client's MetricObjectWithValues, less the collect function it never calls). */
export interface ExportedHistogram<V> {
  readonly name: string;
  readonly help: string;
  readonly type: "histogram";
  readonly aggregator: "sum";
  readonly values: V[];
}

const LE = "le";

/** A histogram whose children are {@link BucketHistogramChild}ren; registered on `registers` like a prom-client metric. */
export class BucketHistogram<T extends string> implements ChildOwner {
  readonly name: string;
  readonly help: string;
  readonly type = "histogram" as const;
  readonly aggregator = "sum" as const;
  readonly #labelNames: ReadonlySet<string>;
  readonly #bounds: readonly number[];
  /** Every child made, by its label values. */
  readonly #children = new Map<string, BucketHistogramChild>();
  /** The children exported, in the order of their first observation (prom-client's order). */
  readonly #exported = new Map<string, BucketHistogramChild>();

  constructor(config: BucketHistogramConfiguration<T>) {
    if (config.labelNames.includes(LE as T)) throw new Error("le is a reserved label keyword");
    for (let i = 0; i < config.buckets.length; i++) {
      const b = config.buckets[i]!;
      if (!Number.isFinite(b) || (i > 0 && b <= config.buckets[i - 1]!)) throw new RangeError(`${config.name}: buckets must be finite and ascending`);
    }
    this.name = config.name;
    this.help = config.help;
    this.#labelNames = new Set(config.labelNames);
    this.#bounds = [...config.buckets];
    // A histogram without labels is exported from the start, as prom-client's is.
    if (config.labelNames.length === 0) this.exported(this.labels({}));
    // The registry's contract for a metric: name, help, type, aggregator, get().
    for (const registry of config.registers) registry.registerMetric(this as unknown as Parameters<Registry["registerMetric"]>[0]);
  }

  /**
   * The child for these labels, made on first use and kept: callers hold it,
   * as they would a prom-client child. Every label name must be one the
   * histogram was made with.
   */
  labels(labels: LabelValues<T>): BucketHistogramChild {
    const key = this.#key(labels);
    let child = this.#children.get(key);
    if (child === undefined) {
      child = new BucketHistogramChild({ ...(labels as Record<string, string | number>) }, key, this.#bounds, this);
      this.#children.set(key, child);
    }
    return child;
  }

  /** @internal a child's first observation since it was made, removed or reset */
  exported(child: BucketHistogramChild): void {
    child.exported = true;
    this.#exported.set(child.key, child);
  }

  /** Drops the series of these labels (a deleted model version); a held child starts again from zero. */
  remove(labels: LabelValues<T>): void {
    const child = this.#children.get(this.#key(labels));
    if (child === undefined) return;
    this.#exported.delete(child.key);
    child.clear();
  }

  /** Drops every series (prom-client's `registry.resetMetrics()`). */
  reset(): void {
    this.#exported.clear();
    for (const child of this.#children.values()) child.clear();
  }

  async get(): Promise<ExportedHistogram<MetricValueWithName<string>>> {
    const data = this.#export();
    return { ...data, values: data.values.map(({ sharedLabels, labels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } })) };
  }

  /** What the registry formats /metrics' text from. */
  async getForPromString(): Promise<ExportedHistogram<ExportValue>> {
    return this.#export();
  }

  #export(): ExportedHistogram<ExportValue> {
    const bucketName = `${this.name}_bucket`;
    const values: ExportValue[] = [];
    for (const child of this.#exported.values()) {
      const shared = child.labels;
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += child.counts[i]!;
        values.push({ labels: { le: this.#bounds[i]! }, sharedLabels: shared, value: cumulative, metricName: bucketName });
      }
      values.push({ labels: { le: "+Inf" }, sharedLabels: shared, value: child.count, metricName: bucketName });
      values.push({ labels: {}, sharedLabels: shared, value: child.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: shared, value: child.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** The map key of a label set; refuses a label name the histogram was not made with. */
  #key(labels: LabelValues<T>): string {
    let key = "";
    for (const name of Object.keys(labels).sort()) {
      if (!this.#labelNames.has(name)) throw new Error(`${this.name}: unknown label '${name}'`);
      key += `${name}\u0000${String((labels as Record<string, unknown>)[name])}\u0001`;
    }
    return key;
  }
}
