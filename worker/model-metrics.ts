/**
 * Metrics a model defines and reports itself, served beside the worker's
 * own on its `--metrics-port` (as Clipper's `add_metric` / `report_metric`
 * let container code do, clipper.md §6.4). A model module gets this object
 * in its `setup` export (worker/model-loader.ts):
 *
 * ```js
 * let tokens;
 * export function setup({ metrics }) {
 *   tokens = metrics.counter("tokens_total", "Tokens produced");
 * }
 * export default async function predict(inputs) {
 *   tokens.inc(inputs.length);
 *   …
 * }
 * ```
 *
 * Names get the prefix `clipper_model_` so they never collide with the
 * worker's own metrics; every series also carries the worker's `service`,
 * `model` and `version` labels. Histograms default to the clipper-ts
 * duration buckets (seconds, 100 µs to 10 s). Summaries are refused: they
 * cannot be aggregated across replicas. Label values must be bounded (a
 * class name, not a query).
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { DURATION_BUCKETS_SECONDS } from "../core/telemetry/metrics.js";

/** Prefix of every model-defined metric name. */
const MODEL_METRIC_PREFIX = "clipper_model_";

/** Label values by label name; names must be among the metric's `labelNames`. */
export type MetricLabels = Readonly<Record<string, string | number>>;

/** A counter: only goes up. */
export interface ModelCounter {
  /** Adds `value` (default 1, must be >= 0). */
  inc(value?: number, labels?: MetricLabels): void;
}

/** A gauge: a value that goes up and down. */
export interface ModelGauge {
  set(value: number, labels?: MetricLabels): void;
  inc(value?: number, labels?: MetricLabels): void;
  dec(value?: number, labels?: MetricLabels): void;
}

/** A histogram: counts observations into buckets. */
export interface ModelHistogram {
  /** Records one observation (in the metric's base unit, e.g. seconds). */
  observe(value: number, labels?: MetricLabels): void;
}

/** Options of a model metric. */
export interface ModelMetricOptions {
  /** Label names the metric's series are split by; none by default. */
  readonly labelNames?: readonly string[];
  /** Histogram bucket upper bounds; defaults to seconds from 100 µs to 10 s. */
  readonly buckets?: readonly number[];
}

type Kind = "counter" | "gauge" | "histogram";
type Defined =
  | { kind: "counter"; handle: ModelCounter }
  | { kind: "gauge"; handle: ModelGauge }
  | { kind: "histogram"; handle: ModelHistogram };

const NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Labels the worker sets itself, plus the ones Prometheus reserves for histograms and summaries. */
const RESERVED_LABELS = new Set(["service", "model", "version", "le", "quantile"]);

/**
 * The model-facing metrics API. Defining a name again with the same kind
 * returns the metric already defined (so a `setup` that runs twice is
 * harmless); with another kind it throws. Every mistake is a TypeError
 * naming the fix, thrown where the model code made it.
 */
export class ModelMetrics {
  readonly #registry: Registry;
  readonly #defined = new Map<string, Defined>();

  constructor(registry: Registry) {
    this.#registry = registry;
  }

  /** Defines (or returns) the counter `clipper_model_<name>`; by convention `name` ends in `_total`. */
  counter(name: string, help: string, options: ModelMetricOptions = {}): ModelCounter {
    return this.#define(name, "counter", () => {
      const c = new Counter({ ...this.#config(name, help, options), registers: [this.#registry] });
      return {
        kind: "counter",
        handle: { inc: (value = 1, labels) => (labels === undefined ? c.inc(value) : c.inc(labels, value)) },
      };
    }).handle as ModelCounter;
  }

  /** Defines (or returns) the gauge `clipper_model_<name>`. */
  gauge(name: string, help: string, options: ModelMetricOptions = {}): ModelGauge {
    return this.#define(name, "gauge", () => {
      const g = new Gauge({ ...this.#config(name, help, options), registers: [this.#registry] });
      return {
        kind: "gauge",
        handle: {
          set: (value, labels) => (labels === undefined ? g.set(value) : g.set(labels, value)),
          inc: (value = 1, labels) => (labels === undefined ? g.inc(value) : g.inc(labels, value)),
          dec: (value = 1, labels) => (labels === undefined ? g.dec(value) : g.dec(labels, value)),
        },
      };
    }).handle as ModelGauge;
  }

  /** Defines (or returns) the histogram `clipper_model_<name>`; by convention `name` ends in its unit, e.g. `_seconds`. */
  histogram(name: string, help: string, options: ModelMetricOptions = {}): ModelHistogram {
    return this.#define(name, "histogram", () => {
      const buckets = [...(options.buckets ?? DURATION_BUCKETS_SECONDS)];
      if (buckets.length === 0 || buckets.some((b) => !Number.isFinite(b))) {
        throw new TypeError(`histogram ${name}: buckets must be finite numbers, e.g. [0.01, 0.1, 1]`);
      }
      const h = new Histogram({ ...this.#config(name, help, options), buckets, registers: [this.#registry] });
      return {
        kind: "histogram",
        handle: { observe: (value, labels) => (labels === undefined ? h.observe(value) : h.observe(labels, value)) },
      };
    }).handle as ModelHistogram;
  }

  /**
   * Clipper's `add_metric(name, type, description, buckets)`: `type` is
   * "Counter", "Gauge" or "Histogram" (any case). Report values with
   * {@link reportMetric}.
   */
  addMetric(name: string, type: string, description: string, buckets?: readonly number[]): void {
    const kind = type.toLowerCase();
    if (kind === "summary") throw new TypeError(`metric ${name}: Summary is not supported (summaries cannot be aggregated across replicas); use Histogram`);
    if (kind === "counter") this.counter(name, description);
    else if (kind === "gauge") this.gauge(name, description);
    else if (kind === "histogram") this.histogram(name, description, buckets === undefined ? {} : { buckets });
    else throw new TypeError(`metric ${name}: unknown type '${type}'; use Counter, Gauge or Histogram`);
  }

  /**
   * Clipper's `report_metric(name, value)`: a counter is increased by
   * `value`, a gauge set to it, a histogram observes it.
   */
  reportMetric(name: string, value: number, labels?: MetricLabels): void {
    const d = this.#defined.get(name);
    if (d === undefined) throw new TypeError(`no model metric named '${name}'; define it first with addMetric, counter, gauge or histogram`);
    if (d.kind === "counter") d.handle.inc(value, labels);
    else if (d.kind === "gauge") d.handle.set(value, labels);
    else d.handle.observe(value, labels);
  }

  #define(name: string, kind: Kind, make: () => Defined): Defined {
    if (typeof name !== "string" || !NAME.test(name)) {
      throw new TypeError(`metric name '${String(name)}' is invalid: use letters, digits and '_', not starting with a digit`);
    }
    const existing = this.#defined.get(name);
    if (existing !== undefined) {
      if (existing.kind !== kind) throw new TypeError(`metric ${name} is already defined as a ${existing.kind}, not a ${kind}`);
      return existing;
    }
    const defined = make();
    this.#defined.set(name, defined);
    return defined;
  }

  #config(name: string, help: string, options: ModelMetricOptions): { name: string; help: string; labelNames: string[] } {
    const labelNames = [...(options.labelNames ?? [])];
    for (const l of labelNames) {
      if (!LABEL.test(l) || l.startsWith("__")) throw new TypeError(`metric ${name}: label name '${l}' is invalid`);
      if (RESERVED_LABELS.has(l)) throw new TypeError(`metric ${name}: label name '${l}' is reserved (the worker sets service, model and version)`);
    }
    return { name: `${MODEL_METRIC_PREFIX}${name}`, help: help === "" ? name : help, labelNames };
  }
}
