/**
 * One worker peer that stops reading stalls nobody: a real gateway process,
 * a real worker for one model, and a peer written here with ZeroMQ that
 * registers as a native worker for another model, then never reads again
 * while it makes the gateway write to it (Clipper v3 heartbeats, each
 * answered).
 */
import test from "ava";
import { Dealer } from "zeromq";
import { decodeGatewayMessage, encodeWorkerMessage } from "../../core/wire/native.js";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { eventually } from "../helpers/processes.js";
import { Stack } from "../helpers/stack.js";

let stack: Stack;

test.before(async () => {
  // Eviction by silence far off, so only the send path can evict the stuck peer within the test.
  stack = await Stack.start(["--eviction-ms", "60000"]);
  await stack.deploy("ok-app", "ok", "1", "strings");
  await stack.worker("ok", "1", "strings", "test/fixtures/models/describe.js");
});

test.after.always(async () => {
  await stack?.close();
});

const predict = (i: number) =>
  call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "ok-app", input: { text: `q${i}` } }), { deadlineMs: 10_000 });

test.serial("a peer that stops reading is evicted, and calls to another model keep being answered meanwhile", async (t) => {
  // The flood and the eviction share two cores with the rest of the suite: wait generously.
  t.timeout(180_000);
  // Reads at most one message at a time into a small socket buffer, then nothing.
  const stuck = new Dealer({ linger: 0, receiveHighWaterMark: 1, receiveBufferSize: 4_096 });
  t.teardown(() => stuck.close());
  stuck.connect(`tcp://127.0.0.1:${stack.gateway.rpc}`);
  await stuck.send(encodeWorkerMessage({ kind: { $case: "register", value: { modelName: "stuck", modelVersion: "1", inputType: "doubles", maxBatchSize: 0, concurrency: 1, description: "", curvePublicKey: Buffer.alloc(0), registrationProof: Buffer.alloc(0), workerId: "" } } }));
  const reply = decodeGatewayMessage(await stuck.receive());
  t.true(reply.ok && reply.value.message.kind?.$case === "registered");
  const workers = async (model: string) => {
    const w = await call<unknown, any>(stack.heartbeat, "listWorkers", { modelName: model });
    return w.ok ? (w.value.workers as unknown[]).length : -1;
  };
  t.is(await workers("stuck"), 1);

  // From now on the peer reads nothing, and makes the gateway answer many heartbeats (bounded).
  const heartbeat = [Buffer.alloc(0), Buffer.from("02000000", "hex")];
  const flooding = (async () => {
    for (let i = 0; i < 300_000 && !stuck.closed; i++) await stuck.send(heartbeat);
  })();

  // Calls to the other model are answered throughout.
  let answered = 0;
  let failed = 0;
  const evicted = eventually(async () => (await workers("stuck")) === 0, 150_000, 100);
  let gone = false;
  void evicted.then((v) => (gone = v));
  for (let round = 0; round < 40 && !(gone && round >= 10); round++) {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => predict(round * 10 + i)));
    for (const [i, r] of results.entries()) {
      if (r.ok && r.value.output === `text:q${round * 10 + i}` && !r.value.default) answered++;
      else failed++;
    }
  }
  t.true(await evicted, "the stuck peer was evicted");
  t.is(failed, 0);
  t.true(answered >= 100);
  t.regex(stack.gateway.proc.output, /worker does not read its messages/);
  t.is(await workers("ok"), 1);
  stuck.close();
  await flooding.catch(() => {});
  t.log(`answered ${answered} calls to the other model while the stuck peer was flooding`);
});
