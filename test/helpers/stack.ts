import { credentials } from "@grpc/grpc-js";
import { pino } from "pino";
import { PredictClient } from "../../gen/clipper/v1/predict.js";
import { HeartbeatClient } from "../../gen/clipper/v1/heartbeat.js";
import { startManagement, type Management } from "../../management/management.js";
import { startGatewayProcess, startWorkerProcess, type Proc, untilReady } from "./processes.js";
import { TestRedis } from "./redis-server.js";

/**
 * A whole local deployment for end-to-end tests: a private redis-server,
 * management (in this process), a gateway process and worker processes.
 */
export class Stack {
  readonly redis: TestRedis;
  readonly management: Management;
  readonly gateway: { proc: Proc; grpc: number; http: number; rpc: number };
  readonly predict: PredictClient;
  readonly heartbeat: HeartbeatClient;
  readonly workers: Proc[] = [];

  private constructor(redis: TestRedis, management: Management, gateway: Stack["gateway"]) {
    this.redis = redis;
    this.management = management;
    this.gateway = gateway;
    this.predict = new PredictClient(`127.0.0.1:${gateway.grpc}`, credentials.createInsecure());
    this.heartbeat = new HeartbeatClient(`127.0.0.1:${gateway.grpc}`, credentials.createInsecure());
  }

  /** `gatewayEnv` is added to the gateway process's environment (e.g. OTEL_*). */
  static async start(gatewayArgs: readonly string[] = [], gatewayEnv: NodeJS.ProcessEnv = {}): Promise<Stack> {
    const redis = await TestRedis.start();
    const management = await startManagement({ redisUrl: redis.url, host: "127.0.0.1", grpcPort: 0, httpPort: 0 }, pino({ level: "silent" }));
    await untilReady(management.httpPort);
    const gateway = await startGatewayProcess(redis.url, gatewayArgs, gatewayEnv);
    return new Stack(redis, management, gateway);
  }

  /** POSTs to management's Clipper /admin/* API; throws unless 200. */
  async admin(endpoint: string, body: unknown): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.management.httpPort}/admin/${endpoint}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`admin ${endpoint}: ${res.status} ${text}`);
    return text;
  }

  /** An app linked to a model version, as clipper_admin would set it up. */
  async deploy(app: string, model: string, version: string, inputType: string, options: { sloMicros?: number; defaultOutput?: string; batchSize?: number } = {}): Promise<void> {
    await this.admin("add_app", { name: app, input_type: inputType, default_output: options.defaultOutput ?? "-1.0", latency_slo_micros: options.sloMicros ?? 2_000_000 });
    await this.admin("add_model", {
      model_name: model, model_version: version, labels: [], input_type: inputType, container_name: "", model_data_path: "", batch_size: options.batchSize ?? -1,
    });
    await this.admin("add_model_links", { app_name: app, model_names: [model] });
  }

  async worker(model: string, version: string, inputType: string, module: string, extra: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Proc> {
    const w = await startWorkerProcess(this.gateway.rpc, model, version, inputType, module, extra, env);
    this.workers.push(w);
    return w;
  }

  /** POSTs JSON to the gateway's HTTP port. */
  async http(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
    const res = await fetch(`http://127.0.0.1:${this.gateway.http}${path}`, { method: "POST", body: JSON.stringify(body), headers });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      // keep the text
    }
    return { status: res.status, json, headers: res.headers };
  }

  async close(): Promise<void> {
    this.predict.close();
    this.heartbeat.close();
    try {
      await Promise.all(this.workers.map((w) => w.stop("SIGKILL")));
      await this.gateway.proc.stop();
      await this.management.close(0);
    } finally {
      await this.redis.destroy();
    }
  }
}
