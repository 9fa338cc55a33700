/**
 * Traces leave real gateway and worker processes through the standard
 * OTEL_* variables alone: a collector-like receiver on 127.0.0.1 takes
 * OTLP/HTTP JSON, and one prediction sent with a traceparent arrives as one
 * trace holding the gateway's spans and the worker's.
 */
import test from "ava";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { eventually, startGatewayProcess } from "../helpers/processes.js";
import { Stack } from "../helpers/stack.js";

/** A span as the receiver keeps it. */
interface Received {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
}

const received: Received[] = [];
const paths: string[] = [];
/** Raw request bodies, to find a trace id in protobuf-encoded exports. */
const bodies: Buffer[] = [];
let collector: Server;
let stack: Stack;

/** OTLP/HTTP JSON ExportTraceServiceRequest → spans (ids are hex strings in the JSON encoding). */
function collect(body: any): void {
  for (const rs of body.resourceSpans ?? []) {
    const service = (rs.resource?.attributes ?? []).find((a: any) => a.key === "service.name")?.value?.stringValue ?? "";
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) received.push({ service, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? "", name: s.name });
    }
  }
}

test.before(async () => {
  collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      paths.push(`${req.method} ${req.url} ${req.headers["content-type"]}`);
      bodies.push(Buffer.concat(chunks));
      try {
        collect(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        // Not JSON: the test's assertions on paths will say so.
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  const env = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    // Export within 100 ms instead of the default 5 s.
    OTEL_BSP_SCHEDULE_DELAY: "100",
  };
  stack = await Stack.start([], env);
  await stack.deploy("o-app", "sum", "1", "doubles");
  await stack.worker("sum", "1", "doubles", "test/fixtures/models/sum.js", [], env);
});

test.after.always(async () => {
  await stack?.close();
  collector?.close();
});

test("with OTEL_EXPORTER_OTLP_ENDPOINT set, one prediction with a traceparent arrives as one trace of gateway and worker spans", async (t) => {
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const parentId = "00f067aa0ba902b7";
  const r = await stack.http("/v1/apps/o-app:predict", { input: { doubles: [1, 2] } }, { traceparent: `00-${traceId}-${parentId}-01` });
  t.is(r.status, 200);
  t.is(r.json.output, "3");
  const inTrace = () => received.filter((s) => s.traceId === traceId);
  // Each process exports on its own schedule: wait until the three spans that must link up have all arrived.
  const arrived = (): boolean => {
    const names = new Set(inTrace().map((s) => `${s.service} ${s.name}`));
    return ["clipper-gateway clipper.v1.Predict/Predict", "clipper-gateway batch sum:1", "clipper-worker predict sum:1"].every((n) => names.has(n));
  };
  t.true(await eventually(arrived), `received: ${JSON.stringify(received)} via ${paths.join("; ")}`);
  t.true(paths.every((p) => p.startsWith("POST /v1/traces application/json")), paths.join("; "));

  const spans = inTrace();
  const server = spans.find((s) => s.service === "clipper-gateway" && s.name === "clipper.v1.Predict/Predict");
  const batch = spans.find((s) => s.service === "clipper-gateway" && s.name === "batch sum:1");
  const predict = spans.find((s) => s.service === "clipper-worker" && s.name === "predict sum:1");
  t.is(server?.parentSpanId, parentId);
  t.is(batch?.parentSpanId, server?.spanId);
  t.is(predict?.parentSpanId, batch?.spanId);
  t.deepEqual([...new Set(spans.map((s) => s.service))].sort(), ["clipper-gateway", "clipper-worker"]);
});

test("OTLP over http/protobuf and over gRPC export the call's span too", async (t) => {
  // A collector's gRPC TraceService/Export, taking the request as raw bytes.
  const grpcBodies: Buffer[] = [];
  const server = new grpc.Server();
  const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
  server.addService(
    {
      export: {
        path: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        requestStream: false,
        responseStream: false,
        requestSerialize: raw.serialize,
        requestDeserialize: raw.deserialize,
        responseSerialize: raw.serialize,
        responseDeserialize: raw.deserialize,
      },
    },
    {
      export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        grpcBodies.push(call.request);
        callback(null, Buffer.alloc(0));
      },
    },
  );
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => (err === null ? resolve(port) : reject(err))),
  );
  t.teardown(() => server.forceShutdown());
  const httpPort = (collector.address() as AddressInfo).port;

  for (const [protocol, endpoint, seen] of [
    ["http/protobuf", `http://127.0.0.1:${httpPort}`, () => bodies],
    ["grpc", `http://127.0.0.1:${grpcPort}`, () => grpcBodies],
  ] as const) {
    const g = await startGatewayProcess(stack.redis.url, [], {
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
      OTEL_BSP_SCHEDULE_DELAY: "100",
    });
    try {
      t.true(await eventually(async () => (await fetch(`http://127.0.0.1:${g.http}/readyz`)).status === 200));
      const traceId = Buffer.from(Array.from({ length: 16 }, (_, i) => i + 1 + (protocol === "grpc" ? 100 : 0)));
      const res = await fetch(`http://127.0.0.1:${g.http}/v1/apps/o-app:predict`, {
        method: "POST",
        headers: { traceparent: `00-${traceId.toString("hex")}-00f067aa0ba902b7-01`, "content-type": "application/json" },
        body: JSON.stringify({ input: { doubles: [1] } }),
      });
      t.is(res.status, 200);
      // Protobuf carries the 16 trace id bytes as they are.
      t.true(await eventually(() => seen().some((b) => b.includes(traceId))), protocol);
    } finally {
      await g.proc.stop();
    }
  }
  t.true(paths.some((p) => p.startsWith("POST /v1/traces application/x-protobuf")), paths.join("; "));
});
