/**
 * A peer that registers model versions no catalog knows leaves nothing
 * behind once its replicas go: no queue, no metric series.
 */
import test from "ava";
import { pino } from "pino";
import { Dealer } from "zeromq";
import { decodeGatewayMessage, encodeWorkerMessage } from "../../core/wire/native.js";
import { startGateway } from "../../gateway/gateway.js";
import { eventually } from "../helpers/processes.js";
import { TestRedis } from "../helpers/redis-server.js";

test("the state of an unknown model version goes with its last replica", async (t) => {
  const redis = await TestRedis.start();
  const g = await startGateway(
    { redisUrl: redis.url, host: "127.0.0.1", grpcPort: 0, httpPort: 0, rpcPort: 0, cacheBytes: 0, queueCapacity: 10, evictionMs: 5_000 },
    pino({ level: "silent" }),
  );
  const peer = new Dealer({ linger: 0 });
  t.teardown(async () => {
    peer.close();
    await g.close(0);
    await redis.destroy();
  });
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${g.httpPort}/metrics`)).text();
  peer.connect(`tcp://127.0.0.1:${g.rpcPort}`);
  await peer.send(encodeWorkerMessage({ kind: { $case: "register", value: { modelName: "ghost", modelVersion: "7", inputType: "doubles", maxBatchSize: 0, concurrency: 1, description: "", curvePublicKey: Buffer.alloc(0), registrationProof: Buffer.alloc(0), workerId: "" } } }));
  const reply = decodeGatewayMessage(await peer.receive());
  t.is(reply.ok && reply.value.message.kind?.$case, "registered");
  // Series carry the service label too.
  const depth = /clipper_queue_depth\{model="ghost",version="7"[,}]/;
  t.true(await eventually(async () => depth.test(await metrics()), 10_000), "the version has a queue while it has a replica");
  await peer.send(encodeWorkerMessage({ kind: { $case: "drain", value: { reason: "done" } } }));
  t.true(await eventually(async () => !(await metrics()).includes('model="ghost"'), 10_000), "no series of the unknown version is left");
});
