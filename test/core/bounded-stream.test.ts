/**
 * BoundedStreamWriter on a real grpc-js server on 127.0.0.1, with an HTTP/2
 * client that does not read (test/helpers/raw-grpc-stream.ts): the producer
 * is held back and the stream ends with RESOURCE_EXHAUSTED; a grpc-js client
 * that reads gets everything.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { BoundedStreamWriter } from "../../core/servers/bounded-stream.js";
import { startGrpcServer } from "../../core/servers/grpc-server.js";
import { RawGrpcStream } from "../helpers/raw-grpc-stream.js";

const MESSAGE = Buffer.alloc(1024, 0x61);
/** Stall limit of these servers, ms: short, so the tests end soon. */
const STALL_MS = 1_000;

/** One server-streaming method; its request says how the handler produces. */
interface Plan {
  /** "flood": produce while the writer takes more, forever; "burst": send `count` at once, then end. */
  mode: "flood" | "burst";
  count: number;
  maxBacklog: number;
}

const definition: grpc.ServiceDefinition = {
  flood: {
    path: "/test.Flood/Flood",
    requestStream: false,
    responseStream: true,
    requestSerialize: (v: Plan) => Buffer.from(JSON.stringify(v)),
    requestDeserialize: (b: Buffer) => JSON.parse(b.toString()) as Plan,
    responseSerialize: (v: Buffer) => v,
    responseDeserialize: (b: Buffer) => b,
  },
};

interface ServerSide {
  produced: number;
  cancelled: boolean;
  failed: string | null;
}

async function start(t: { teardown(fn: () => unknown): void }) {
  const side: ServerSide = { produced: 0, cancelled: false, failed: null };
  const server = new grpc.Server();
  server.addService(definition, {
    flood: (call: grpc.ServerWritableStream<Plan, Buffer>) => {
      const plan = call.request;
      call.once("cancelled", () => {
        side.cancelled = true;
        out.close();
      });
      const produce = (): void => {
        while (out.open && !out.blocked) {
          out.send(MESSAGE);
          side.produced++;
        }
      };
      const out = new BoundedStreamWriter<Buffer>(call, {
        stallMs: STALL_MS,
        maxBacklog: plan.maxBacklog,
        what: "Flood",
        onWritable: () => {
          if (plan.mode === "flood") produce();
        },
        onFailed: (details) => (side.failed = details),
      });
      if (plan.mode === "flood") {
        produce();
      } else {
        for (let i = 0; i < plan.count; i++) {
          out.send(Buffer.from(String(i)));
          side.produced++;
        }
        out.end();
      }
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  t.teardown(() => {
    client.close();
    server.forceShutdown();
  });
  const open = (plan: Plan): grpc.ClientReadableStream<Buffer> =>
    client.makeServerStreamRequest("/test.Flood/Flood", definition.flood!.requestSerialize, (b: Buffer) => b, plan);
  /** The same call from a client that reads nothing until told to. */
  const openRaw = (plan: Plan): RawGrpcStream => {
    const raw = RawGrpcStream.open(port, "/test.Flood/Flood");
    t.teardown(() => raw.close());
    raw.send(Buffer.from(JSON.stringify(plan)));
    raw.end();
    return raw;
  };
  return { side, open, openRaw };
}

/** Resolves with the call's final status (the client need not read for a reset to arrive). */
function statusOf(stream: grpc.ClientReadableStream<Buffer>): Promise<grpc.StatusObject> {
  stream.on("error", () => {});
  return new Promise((resolve) => stream.once("status", resolve));
}

function within<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  return Promise.race([p, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), ms).unref())]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a client that never reads holds the producer back, and its stream is reset with RESOURCE_EXHAUSTED", async (t) => {
  const { side, openRaw } = await start(t);
  const raw = openRaw({ mode: "flood", count: 0, maxBacklog: 16 });
  const s = await within(raw.done, 20_000);
  t.not(s, "timeout");
  if (s !== "timeout") t.like(s, { code: grpc.status.RESOURCE_EXHAUSTED, via: "reset" });
  t.regex(side.failed ?? "", /read nothing for 1000 ms/);
  t.true(side.cancelled, "the server-side call was torn down");
  // What fits in HTTP/2 windows and grpc-js buffers (a few hundred KiB of 1 KiB messages), not an unbounded flood.
  t.log(`messages produced: ${side.produced}`);
  t.true(side.produced < 2_000, `produced ${side.produced}`);
});

test("a client that reads again after the stall limit gets what was sent, then RESOURCE_EXHAUSTED with the reason", async (t) => {
  const { side, openRaw } = await start(t);
  const raw = openRaw({ mode: "flood", count: 0, maxBacklog: 16 });
  // Read again after the stall limit, before a second one has passed (when the stream would be reset).
  t.true(await within((async () => {
    while (side.failed === null) await sleep(20);
  })(), 10_000) !== "timeout");
  const received = raw.startReading();
  const s = await within(raw.done, 20_000);
  t.not(s, "timeout");
  if (s === "timeout") return;
  t.is(s.code, grpc.status.RESOURCE_EXHAUSTED);
  // Trailers with the reason when the client's reads reach them in time; on
  // a loaded machine the second stall limit may pass first and reset the
  // stream, which is the same status without the text.
  if (s.via === "trailers") t.regex(s.details, /Flood: the client read nothing for 1000 ms/);
  t.true(received.length <= side.produced, `received ${received.length} of ${side.produced}`);
  t.regex(side.failed ?? "", /read nothing for 1000 ms/);
});

test("a reading client gets every message in order, backlog included, then OK", async (t) => {
  const { side, open } = await start(t);
  const stream = open({ mode: "burst", count: 3_000, maxBacklog: 5_000 });
  const status = statusOf(stream);
  const got: string[] = [];
  stream.on("data", (b: Buffer) => got.push(b.toString()));
  const s = await within(status, 20_000);
  t.not(s, "timeout");
  if (s !== "timeout") t.is(s.code, grpc.status.OK);
  t.is(side.produced, 3_000);
  t.deepEqual(got, Array.from({ length: 3_000 }, (_, i) => String(i)));
});

test("a producer that cannot wait and falls past the backlog ends the stream with RESOURCE_EXHAUSTED at once", async (t) => {
  const { side, openRaw } = await start(t);
  const raw = openRaw({ mode: "burst", count: 3_000, maxBacklog: 100 });
  // Read only once the server has given up, so the stream was blocked when the burst came.
  t.true(await within((async () => {
    while (side.failed === null) await sleep(20);
  })(), 10_000) !== "timeout");
  t.regex(side.failed ?? "", /fell 100 messages behind/);
  raw.startReading();
  const s = await within(raw.done, 20_000);
  t.not(s, "timeout");
  if (s !== "timeout") {
    t.like(s, { code: grpc.status.RESOURCE_EXHAUSTED, via: "trailers" });
    t.regex(s.details, /fell 100 messages behind/);
  }
});

test("server reflection stops answering a client that never reads and ends its stream with RESOURCE_EXHAUSTED", async (t) => {
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, bindings: [], streamStallMs: STALL_MS });
  t.teardown(() => server.close(0));
  const raw = RawGrpcStream.open(server.port, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
  t.teardown(() => raw.close());
  // file_containing_symbol (field 4): each answer is a descriptor file and its imports, kilobytes.
  const symbol = Buffer.from("grpc.reflection.v1.ServerReflection");
  const request = Buffer.concat([Buffer.from([0x22, symbol.length]), symbol]);
  // Sent with flow control: once the server stops reading, the client waits until the stream ends.
  let sent = 0;
  const sending = (async () => {
    for (; sent < 20_000 && !raw.closed; sent++) if (!raw.send(request)) await raw.drained();
  })();
  const s = await within(raw.done, 20_000);
  await sending;
  t.log(`requests sent before the stream ended: ${sent}`);
  t.true(sent < 20_000, "the server stopped reading requests");
  t.not(s, "timeout");
  if (s !== "timeout") t.is(s.code, grpc.status.RESOURCE_EXHAUSTED);
});
