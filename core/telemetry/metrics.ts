import { collectDefaultMetrics, Registry } from "prom-client";

/**
 * A process's Prometheus registry with Node's default metrics
 * (process_*, nodejs_*). Each process owns one; nothing registers globally.
 */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}
