import test from "ava";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { createAdminClient } from "../../clients/client.js";
import { DEPLOYMENT_DB, modelPolicyKey } from "../../core/deployment-layout.js";
import { call } from "../helpers/grpc.js";
import { spawnBin } from "../helpers/processes.js";
import { dumpRedis, redisDb } from "../helpers/redis-dump.js";
import { Stack } from "../helpers/stack.js";

// A counter model stands in for a stochastic one: every model call gives a
// new number, so a shared or stored answer shows as a repeated number.

let stack: Stack;
const COUNTER = "test/fixtures/models/counter.js";

test.before(async () => {
  stack = await Stack.start();
  const mgmt = `127.0.0.1:${stack.management.grpcPort}`;
  // Registered through the CLI, as an operator would.
  for (const [model, flags] of [["draws", ["--no-cache", "--no-coalesce"]], ["fresh", ["--no-cache"]], ["apart", ["--no-coalesce"]], ["plain", []]] as const) {
    await stack.admin("add_app", { name: `${model}-app`, input_type: "doubles", default_output: "-1", latency_slo_micros: 5_000_000 });
    const cli = spawnBin("clipper", ["models", "register", model, "--version", "1", "--input-type", "doubles", ...flags, "--management", mgmt]);
    if ((await cli.waitExit(30_000)) !== 0) throw new Error(cli.output);
    await stack.admin("add_model_links", { app_name: `${model}-app`, model_names: [model] });
    await stack.worker(model, "1", "doubles", COUNTER);
  }
});

test.after.always(async () => {
  await stack?.close();
});

const predict = (app: string, doubles: number[]) => call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: `${app}-app`, input: { doubles } }));

async function outputs(app: string, doubles: number[], concurrent: number): Promise<string[]> {
  const answers = await Promise.all(Array.from({ length: concurrent }, () => predict(app, doubles)));
  return answers.map((a) => (a.ok && !a.value.default ? (a.value.output as string) : `error ${JSON.stringify(a)}`));
}

test.serial("the policy is kept in DB 8, outside Clipper's fields, and shown by GetModel", async (t) => {
  const db8 = await redisDb(stack.redis.url, DEPLOYMENT_DB);
  t.deepEqual(await db8.hgetall(modelPolicyKey("draws", "1")), { cache: "off", coalesce: "off" });
  t.deepEqual(await db8.hgetall(modelPolicyKey("plain", "1")), { cache: "on", coalesce: "on" });
  db8.disconnect();
  const dump = await dumpRedis(stack.redis.url);
  t.deepEqual(Object.keys(dump["2/draws:1"] as object).sort(), ["batch_size", "container_name", "input_type", "labels", "load", "model_data_path", "model_name", "model_version", "valid"]);
  const admin = createAdminClient(`127.0.0.1:${stack.management.grpcPort}`);
  t.like((await admin.getModel({ name: "draws", version: "1" })).model, { noCache: true, noCoalesce: true });
  t.like((await admin.getModel({ name: "fresh", version: "1" })).model, { noCache: true, noCoalesce: false });
  t.like((await admin.getModel({ name: "plain", version: "1" })).model, { noCache: false, noCoalesce: false });
  admin.close();
});

test.serial("with coalescing off, two concurrent identical calls reach the model twice; on, they share one call", async (t) => {
  for (const app of ["draws", "apart"]) {
    const got = await outputs(app, [1, 2], 2);
    t.is(new Set(got).size, 2, `${app}: two draws, ${got.join(" / ")}`);
  }
  const shared = await outputs("plain", [1, 2], 2);
  t.is(new Set(shared).size, 1, `plain: one shared call, ${shared.join(" / ")}`);
});

test.serial("with the cache off, a repeated call reaches the model again; on, it is answered from the cache", async (t) => {
  for (const app of ["draws", "fresh"]) {
    const [first] = await outputs(app, [3], 1);
    const [again] = await outputs(app, [3], 1);
    t.not(again, first, `${app}: a new draw`);
    t.false(first!.startsWith("error"), first);
  }
  const [first] = await outputs("plain", [3], 1);
  const [again] = await outputs("plain", [3], 1);
  t.is(again, first, "plain: the stored answer");
});

test.serial("a policy written into DB 8 later is followed by the gateway; deleting the version deletes its policy", async (t) => {
  const db8 = await redisDb(stack.redis.url, DEPLOYMENT_DB);
  t.teardown(() => db8.disconnect());
  await db8.hset(modelPolicyKey("plain", "1"), { cache: "off" });
  let fresh = false;
  for (let i = 0; i < 100 && !fresh; i++) {
    const [a] = await outputs("plain", [4, i], 1);
    const [b] = await outputs("plain", [4, i], 1);
    fresh = a !== b;
    if (!fresh) await new Promise((r) => setTimeout(r, 50));
  }
  t.true(fresh, "the cache turned off without a restart");
  await stack.admin("delete_versioned_model", { model_name: "draws", model_version: "1" });
  t.is(await db8.exists(modelPolicyKey("draws", "1")), 0);
});
