/**
 * An open-loop load driver: queries leave at a fixed rate whatever the
 * answers do, each with an input of its own (the gateway coalesces identical
 * in-flight queries), over Clipper REST and, for a share of them, gRPC
 * Predict. Every call is classified by what its caller saw: a model answer,
 * the app's default, shed (HTTP 429 / RESOURCE_EXHAUSTED, with or without a
 * Retry-After), or an error. A call unanswered after {@link GIVE_UP_MS}
 * (far past any SLO used here) is ended by the client and counted as the
 * error "no answer in 5 s": a hang, without letting stuck sockets pile up
 * the requests behind them until the driver runs out of memory.
 */
import http from "node:http";
import { performance } from "node:perf_hooks";
import { credentials, Metadata, status as Status, type ServiceError } from "@grpc/grpc-js";
import { PredictClient, PredictRequest, type PredictResponse } from "../../gen/clipper/v1/predict.js";

/** How one call ended, as its caller saw it. */
export type Outcome = "answer" | "default" | "shed" | "error";

/** One finished call. `end` is Infinity for a call still unanswered when the driver gave up on it. */
export interface CallLog {
  readonly transport: "http" | "grpc";
  readonly start: number;
  readonly end: number;
  readonly outcome: Outcome;
}

/** Counts of one run. Latencies are of admitted calls (answers and defaults), in ms. */
export interface Tally {
  sent: number;
  /** Calls due but not sent because {@link MAX_PENDING} were open. */
  unsent: number;
  answers: number;
  /** Model answers within the SLO. */
  inTime: number;
  defaults: number;
  /** Shed calls (HTTP 429, gRPC RESOURCE_EXHAUSTED) per transport. */
  readonly shed: Record<CallLog["transport"], number>;
  /** Shed calls that carried a Retry-After (HTTP header or gRPC trailer), per transport. */
  readonly shedWithRetryAfter: Record<CallLog["transport"], number>;
  errors: number;
  /** Calls never answered (see {@link RunningLoad.stop}). */
  hung: number;
  /** Error kinds ("HTTP 500", "ECONNRESET", "gRPC UNAVAILABLE") and their counts. */
  readonly errorKinds: Map<string, number>;
  readonly latenciesMs: number[];
  /** Every call, when the run was started with `keepLog` (for short runs). */
  readonly log: CallLog[];
}

/** Where and what to drive. */
export interface Target {
  readonly app: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly sloMs: number;
}

/** A load in progress. */
export interface RunningLoad {
  /** Calls sent and not yet answered. */
  readonly pending: number;
  /**
   * Stops sending, waits up to `graceMs` for the calls in flight and returns
   * the tally; calls still unanswered then are counted as hung.
   */
  stop(graceMs: number): Promise<Tally>;
}

/** When the client gives up on a call, in ms. */
export const GIVE_UP_MS = 5_000;
const GIVE_UP = `no answer in ${GIVE_UP_MS / 1000} s`;

/**
 * Most calls the driver keeps open at once. A due call beyond it is not sent
 * but counted as `unsent`: when the box cannot carry the offered rate, the
 * driver's own backlog would otherwise grow without bound and measure itself.
 */
export const MAX_PENDING = 4_096;

/** Inputs never sent before, across every run of one process. */
let nextInput = 0;

/** Sends queries to one gateway; make a new one after the gateway restarts on other ports. */
export class OpenLoopDriver {
  readonly #target: Target;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 2048 });
  readonly #grpc: PredictClient;

  constructor(target: Target) {
    this.#target = target;
    this.#grpc = new PredictClient(`127.0.0.1:${target.grpcPort}`, credentials.createInsecure());
  }

  /**
   * Starts sending `rate` queries per second, `grpcShare` of them over gRPC.
   * A timer tick sends every query due by then, so a busy event loop sends
   * in bursts but keeps the rate.
   */
  start(rate: number, grpcShare: number, options: { keepLog: boolean }): RunningLoad {
    const tally: Tally = {
      sent: 0, unsent: 0, answers: 0, inTime: 0, defaults: 0, shed: { http: 0, grpc: 0 }, shedWithRetryAfter: { http: 0, grpc: 0 }, errors: 0, hung: 0,
      errorKinds: new Map(), latenciesMs: [], log: [],
    };
    const inFlight = new Map<number, { transport: CallLog["transport"]; start: number }>();
    let seq = 0;
    let stopped = false;
    let onIdle: (() => void) | null = null;
    const settle = (id: number, outcome: Outcome, detail: { retryAfter?: boolean; error?: string } = {}): void => {
      const call = inFlight.get(id);
      if (call === undefined) return; // given up on as hung
      inFlight.delete(id);
      const end = performance.now();
      const ms = end - call.start;
      if (outcome === "answer") {
        tally.answers++;
        if (ms <= this.#target.sloMs) tally.inTime++;
      } else if (outcome === "default") tally.defaults++;
      else if (outcome === "shed") {
        tally.shed[call.transport]++;
        if (detail.retryAfter === true) tally.shedWithRetryAfter[call.transport]++;
      } else {
        tally.errors++;
        const kind = detail.error ?? "unknown";
        tally.errorKinds.set(kind, (tally.errorKinds.get(kind) ?? 0) + 1);
      }
      if (outcome === "answer" || outcome === "default") tally.latenciesMs.push(ms);
      if (options.keepLog) tally.log.push({ transport: call.transport, start: call.start, end, outcome });
      if (inFlight.size === 0) onIdle?.();
    };
    const t0 = performance.now();
    const tick = (): void => {
      if (stopped) return;
      const due = Math.floor(((performance.now() - t0) / 1000) * rate);
      while (tally.sent + tally.unsent < due) {
        if (inFlight.size >= MAX_PENDING) {
          tally.unsent++;
          continue;
        }
        tally.sent++;
        const id = seq++;
        // Spreads the gRPC calls evenly among the HTTP ones.
        const transport = Math.floor((id + 1) * grpcShare) > Math.floor(id * grpcShare) ? "grpc" : "http";
        inFlight.set(id, { transport, start: performance.now() });
        const input = nextInput++;
        if (transport === "http") this.#sendHttp(input, (o, d) => settle(id, o, d));
        else this.#sendGrpc(input, (o, d) => settle(id, o, d));
      }
      setTimeout(tick, 1);
    };
    tick();
    return {
      get pending() {
        return inFlight.size;
      },
      stop: async (graceMs: number): Promise<Tally> => {
        stopped = true;
        if (inFlight.size > 0) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, graceMs);
            onIdle = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
        for (const [id, call] of inFlight) {
          tally.hung++;
          if (options.keepLog) tally.log.push({ transport: call.transport, start: call.start, end: Infinity, outcome: "error" });
          inFlight.delete(id);
        }
        return tally;
      },
    };
  }

  close(): void {
    this.#agent.destroy();
    this.#grpc.close();
  }

  #sendHttp(input: number, done: (o: Outcome, d?: { retryAfter?: boolean; error?: string }) => void): void {
    const body = JSON.stringify({ input: [input, 1, 2] });
    const req = http.request(
      {
        host: "127.0.0.1", port: this.#target.httpPort, path: `/${this.#target.app}/predict`, method: "POST", agent: this.#agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("error", (err: NodeJS.ErrnoException) => done("error", { error: err.code ?? err.message }));
        res.on("end", () => {
          if (res.statusCode === 429) done("shed", { retryAfter: res.headers["retry-after"] !== undefined });
          else if (res.statusCode !== 200) done("error", { error: `HTTP ${res.statusCode}` });
          else done(text.includes('"default":true') ? "default" : "answer");
        });
      },
    );
    let gaveUp = false;
    req.setTimeout(GIVE_UP_MS, () => {
      gaveUp = true;
      req.destroy();
    });
    req.on("error", (err: NodeJS.ErrnoException) => done("error", { error: gaveUp ? GIVE_UP : err.code ?? err.message }));
    req.end(body);
  }

  #sendGrpc(input: number, done: (o: Outcome, d?: { retryAfter?: boolean; error?: string }) => void): void {
    const request = PredictRequest.fromPartial({ app: this.#target.app, input: { doubles: [input, 1, 2] } });
    this.#grpc.predict(request, new Metadata(), { deadline: Date.now() + GIVE_UP_MS }, (err: ServiceError | null, res?: PredictResponse) => {
      if (err === null) done(res?.default === true ? "default" : "answer");
      else if (err.code === Status.RESOURCE_EXHAUSTED) done("shed", { retryAfter: err.metadata.get("retry-after").length > 0 });
      else done("error", { error: err.code === Status.DEADLINE_EXCEEDED ? GIVE_UP : `gRPC ${Status[err.code] ?? err.code}` });
    });
  }
}
