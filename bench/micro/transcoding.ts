/**
 * What the transcoder's JSON conversions cost per call, generic path
 * (fromJson → binary → ts-proto decode; encode → fromBinary → toJson)
 * against the direct one (core/transcoding/direct-json.ts), measured
 * alternately in one process: a Predict call (body read as JSON text, bound,
 * converted for the handler; response written as JSON text) and a
 * PredictBatch of 8 inputs. CPU µs per call, median of 5 alternating runs.
 *
 *   node --import tsx bench/micro/transcoding.ts
 */
import { PredictService } from "../../gen/clipper/v1/predict.js";
import { descriptorSet } from "../../core/descriptor-set.js";
import { bindJson } from "../../core/transcoding/binder.js";
import { RouteCodec } from "../../core/transcoding/handler-codec.js";
import { loadDescriptorRegistry } from "../../core/transcoding/http-rule.js";
import { compileRoutes, type Route } from "../../core/transcoding/route.js";
import { median } from "../lib/stats.js";

const CALLS = 20_000;
const RUNS = 5;

const routes = compileRoutes([{ name: "clipper.v1.Predict", definition: PredictService, handlers: {} }], loadDescriptorRegistry(descriptorSet()));
const noQuery = new URLSearchParams();

interface Case {
  readonly name: string;
  readonly route: Route;
  readonly body: (i: number) => Buffer;
  readonly response: (i: number) => unknown;
}

const answer = (i: number): Record<string, unknown> => ({
  queryId: 1000 + i,
  output: `{"label":${i % 10},"score":0.${i}}`,
  default: false,
  defaultExplanation: "",
  model: "noop",
  modelVersion: "1",
});
const cases: Case[] = [
  {
    name: "Predict, 4 doubles",
    route: routes.find((r) => r.grpcPath.endsWith("/Predict"))!,
    body: (i) => Buffer.from(`{"input":{"doubles":[${i},0.5,1.25,${i % 7}]}}`),
    response: answer,
  },
  {
    name: "PredictBatch, 8 × 4 doubles",
    route: routes.find((r) => r.grpcPath.endsWith("/PredictBatch"))!,
    body: (i) => Buffer.from(`{"inputs":[${Array.from({ length: 8 }, (_, k) => `{"doubles":[${i},${k},0.5,1.25]}`).join(",")}]}`),
    response: (i) => ({ predictions: Array.from({ length: 8 }, (_, k) => answer(i * 8 + k)) }),
  },
];

function cpuPerCall(route: Route, codec: RouteCodec, c: Case): number {
  const bodies = Array.from({ length: 1000 }, (_, i) => c.body(i));
  const responses = Array.from({ length: 1000 }, (_, i) => c.response(i));
  let sink = 0;
  const c0 = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) {
    const bound = bindJson(route.plan, ["noop"], noQuery, bodies[i % 1000]!);
    if (!bound.ok) throw new Error(bound.error);
    const request = codec.handlerRequest(codec.readRequest(bound.json)) as { app: string };
    sink += request.app.length + codec.writeResponse(responses[i % 1000]).length;
  }
  const used = process.cpuUsage(c0);
  if (sink === 0) throw new Error("nothing converted");
  return (used.user + used.system) / CALLS;
}

console.log(`| call | generic µs/call | direct µs/call | direct / generic |`);
console.log(`|---|--:|--:|--:|`);
for (const c of cases) {
  const generic = new RouteCodec(c.route.plan, PredictService[c.route.grpcPath.endsWith("Batch") ? "predictBatch" : "predict"], { direct: false });
  const direct = c.route.codec;
  const g: number[] = [];
  const d: number[] = [];
  cpuPerCall(c.route, generic, c); // warm-up
  cpuPerCall(c.route, direct, c);
  for (let run = 0; run < RUNS; run++) {
    g.push(cpuPerCall(c.route, generic, c));
    d.push(cpuPerCall(c.route, direct, c));
  }
  const gm = median(g);
  const dm = median(d);
  console.log(`| ${c.name} | ${gm.toFixed(2)} | ${dm.toFixed(2)} | ${(dm / gm).toFixed(2)} |`);
}
