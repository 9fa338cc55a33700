import test from "ava";
import { Dealer } from "zeromq";
import { call } from "../helpers/grpc.js";
import { eventually } from "../helpers/processes.js";
import { dumpRedis } from "../helpers/redis-dump.js";
import { Stack } from "../helpers/stack.js";
import { E, hex, receive } from "../helpers/zmq-frames.js";

let stack: Stack;

test.before(async () => {
  stack = await Stack.start();
});

test.after.always(async () => {
  await stack?.close();
});


// A Clipper v3 container written here, sending exactly the frames of
// Clipper's own no-op container (clipper.md §4.9).
test.serial("a Clipper RPC v3 peer registers, appears in ListWorkers and DB 3, and serves /<app>/predict", async (t) => {
  await stack.deploy("noop-app", "noop", "1", "doubles");
  const d = new Dealer({ linger: 0 });
  t.teardown(() => d.close());
  d.connect(`tcp://127.0.0.1:${stack.gateway.rpc}`);

  await d.send([E, hex("02000000")]);
  t.deepEqual(await receive(d), ["", "03000000", "02000000", "01000000"]);
  await d.send([E, hex("00000000"), Buffer.from("noop"), Buffer.from("1"), Buffer.from("3"), hex("03000000")]);
  t.true(await eventually(async () => {
    const w = await call<unknown, any>(stack.heartbeat, "listWorkers", { modelName: "noop" });
    return w.ok && w.value.workers.length === 1 && w.value.workers[0].dialect === 1;
  }));
  // Clipper's seven fields as its frontend writes them, plus the owning gateway and its run (a container sends no worker id).
  const { clipper_ts_gateway: owner, clipper_ts_gateway_run: run, ...clipperFields } = (await dumpRedis(stack.redis.url))["3/noop,1,0"] as Record<string, string>;
  t.deepEqual(clipperFields, {
    model_id: "noop:1", model_name: "noop", model_version: "1", model_replica_id: "0", zmq_connection_id: "0", batch_size: "1", input_type: "doubles",
  });
  t.regex(owner ?? "", new RegExp(`:${stack.gateway.rpc}$`));
  t.regex(run ?? "", /^[0-9a-f-]{36}$/);

  const answer = stack.http("/noop-app/predict", { input: [1.0, 2.0, 3.0] });
  const request = await receive(d);
  t.deepEqual(request.slice(0, 7), [
    "", "03000000", "01000000", request[3]!, "00000000", "1800000000000000", "03000000000000000100000000000000" + "1800000000000000",
  ]);
  t.is(request[7], "000000000000f03f00000000000000400000000000000840");
  // Answer exactly as rpc.py does: type, the echoed id, header length, header, outputs.
  await d.send([E, hex("01000000"), hex(request[3]!), hex("1000000000000000"), hex("0100000000000000 0c00000000000000"), Buffer.from("fixed-answer")]);
  const r = await answer;
  t.is(r.status, 200);
  t.is(r.json.output, "fixed-answer");
  t.false(r.json.default);

  await d.send([E, hex("02000000")]);
  t.deepEqual(await receive(d), ["", "03000000", "02000000", "00000000"]);
});

test.serial("identities that only heartbeat are answered with type 1 and never break the gateway", async (t) => {
  const ghosts = Array.from({ length: 5 }, () => new Dealer({ linger: 0 }));
  t.teardown(() => ghosts.forEach((g) => g.close()));
  for (const g of ghosts) {
    g.connect(`tcp://127.0.0.1:${stack.gateway.rpc}`);
    await g.send([E, hex("02000000")]);
    t.deepEqual(await receive(g), ["", "03000000", "02000000", "01000000"]);
  }
  // Malformed frames are ignored, not fatal.
  await ghosts[0]!.send([E, hex("0900")]);
  await ghosts[0]!.send([Buffer.from("junk")]);
  await ghosts[0]!.send([E, hex("00000000"), Buffer.from("m"), Buffer.from("1"), Buffer.from("3")]);
  await ghosts[0]!.send([E, hex("02000000")]);
  t.deepEqual(await receive(ghosts[0]!), ["", "03000000", "02000000", "01000000"]);
  const w = await call<unknown, any>(stack.heartbeat, "listWorkers", { modelName: "m" });
  t.true(w.ok);
  if (w.ok) t.is(w.value.workers.length, 0);
});
