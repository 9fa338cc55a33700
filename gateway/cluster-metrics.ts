/**
 * /metrics of a gateway run as several processes (--processes N): the
 * shared HTTP port hands each scrape to one process, which asks the primary
 * for every process's metrics (prom-client's AggregatorRegistry, over the
 * cluster IPC channel). Each process labels its series `process="<index>"`,
 * so the aggregate keeps them apart: a scrape shows every process, and how
 * many calls each answered.
 */
import cluster from "node:cluster";
import { AggregatorRegistry, type Registry } from "prom-client";

const REQUEST = "clipper-gateway:metrics-request";
const REPLY = "clipper-gateway:metrics";

/** What /metrics reads: a registry, or the cluster's aggregate. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

interface MetricsRequest {
  readonly type: typeof REQUEST;
  readonly id: number;
}
interface MetricsReply {
  readonly type: typeof REPLY;
  readonly id: number;
  readonly text?: string;
  readonly error?: string;
}

/** Longest a scrape waits for the primary, in ms. */
const SCRAPE_TIMEOUT_MS = 5_000;

/** In a child process: offers `registry` to the primary's aggregation, and returns the source /metrics serves. */
export function clusterMetricsSource(registry: Registry): MetricsSource {
  AggregatorRegistry.setRegistries([registry]);
  // prom-client answers the primary's requests only once an AggregatorRegistry
  // exists in the process: constructing one attaches that listener.
  new AggregatorRegistry();
  let next = 0;
  const waiting = new Map<number, (reply: MetricsReply) => void>();
  process.on("message", (m: unknown) => {
    const reply = m as Partial<MetricsReply> | null;
    if (reply?.type !== REPLY || typeof reply.id !== "number") return;
    waiting.get(reply.id)?.(reply as MetricsReply);
    waiting.delete(reply.id);
  });
  return {
    contentType: registry.contentType,
    metrics: () =>
      new Promise<string>((resolve, reject) => {
        const id = next++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error("the gateway's primary process did not send the metrics in time"));
        }, SCRAPE_TIMEOUT_MS);
        waiting.set(id, (reply) => {
          clearTimeout(timer);
          if (reply.text !== undefined) resolve(reply.text);
          else reject(new Error(reply.error ?? "no metrics"));
        });
        process.send?.({ type: REQUEST, id } satisfies MetricsRequest);
      }),
  };
}

/** In the primary: answers the children's requests with every child's metrics. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on("message", (worker, m: unknown) => {
    const request = m as Partial<MetricsRequest> | null;
    if (request?.type !== REQUEST || typeof request.id !== "number") return;
    const id = request.id;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: REPLY, id, text } satisfies MetricsReply),
      (err: unknown) => worker.send({ type: REPLY, id, error: err instanceof Error ? err.message : String(err) } satisfies MetricsReply),
    );
  });
}
