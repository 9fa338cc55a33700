import test from "ava";
import { resolve } from "node:path";
import { status } from "@grpc/grpc-js";
import { isServiceError } from "../../clients/client.js";
import { eventually, ROOT } from "../helpers/processes.js";
import { redisDb } from "../helpers/redis-dump.js";
import { ManagedStack } from "../helpers/managed-stack.js";

const SUM = resolve(ROOT, "test/fixtures/models/sum.js");
let stack: ManagedStack;

test.before(async () => {
  stack = await ManagedStack.start();
  await stack.admin.createApp({ name: "adder", inputType: "doubles", defaultOutput: "-1", latencySloMicros: 2_000_000 });
});

test.after.always(async () => {
  await stack?.close();
});

const codeOf = (p: Promise<unknown>): Promise<number> => p.then(() => 0, (e: unknown) => (isServiceError(e) ? e.code : -1));

/** The pids the manager recorded in Redis DB 8 (its own keys, outside Clipper's layout). */
async function workerPids(): Promise<number[]> {
  const db = await redisDb(stack.redis.url, 8);
  try {
    const keys = await db.keys("clipper-ts:worker-processes:*");
    const pids: number[] = [];
    for (const k of keys) pids.push(...Object.keys(await db.hgetall(k)).map(Number));
    return pids;
  } finally {
    db.disconnect();
  }
}

test.serial("deploy runs the workers, registers the version and serves it", async (t) => {
  const res = await stack.admin.deployModel({ name: "adder-model", version: "1", inputType: "doubles", numReplicas: 1, worker: { module: SUM } });
  t.is(res.numReplicas, 1);
  t.true(res.model!.isCurrentVersion);
  t.is(res.previousVersion, "");
  await stack.admin.linkModel({ app: "adder", model: "adder-model" });
  t.is(await stack.liveWorkers("adder-model"), 1);
  t.is((await stack.predict.predict({ app: "adder", input: { doubles: [1, 2, 3] } })).output, "6");
  // The desired state is in DB 8 under a clipper-ts: key.
  const db = await redisDb(stack.redis.url, 8);
  t.is((await db.hgetall("clipper-ts:deployment:adder-model:1")).replicas, "1");
  db.disconnect();
});

test.serial("replicas scale 1 → 3 → 1, draining before stopping", async (t) => {
  t.is((await stack.admin.setNumReplicas({ modelName: "adder-model", numReplicas: 3 })).numReplicas, 3);
  t.true(await eventually(async () => (await stack.liveWorkers("adder-model")) === 3, 30_000), "three live workers");
  t.is((await workerPids()).length, 3);
  await stack.admin.setNumReplicas({ modelName: "adder-model", modelVersion: "1", numReplicas: 1 });
  t.true(await eventually(async () => (await stack.heartbeat.listWorkers({ modelName: "adder-model" })).workers.length === 1, 30_000), "one worker left");
  const d = (await stack.admin.listDeployments({ modelName: "adder-model" })).deployments;
  t.is(d.length, 1);
  t.is(d[0]!.desiredReplicas, 1);
  t.true(await eventually(async () => (await stack.admin.listDeployments({})).deployments[0]!.runningProcesses === 1, 15_000));
  t.is(d[0]!.restarts, 0, "scaling down is not a crash");
  t.is((await stack.predict.predict({ app: "adder", input: { doubles: [2, 2] } })).output, "4");
});

test.serial("a killed worker is replaced", async (t) => {
  await stack.admin.setNumReplicas({ modelName: "adder-model", numReplicas: 2 });
  t.true(await eventually(async () => (await stack.liveWorkers("adder-model")) === 2, 30_000));
  const [victim] = await workerPids();
  t.truthy(victim);
  process.kill(victim!, "SIGKILL");
  t.true(await eventually(async () => (await stack.admin.listDeployments({})).deployments[0]!.restarts >= 1, 15_000), "restart counted");
  t.true(await eventually(async () => {
    const pids = await workerPids();
    return pids.length === 2 && !pids.includes(victim!) && (await stack.liveWorkers("adder-model")) === 2;
  }, 30_000), "two live workers again, without the killed one");
  const d = (await stack.admin.listDeployments({})).deployments[0]!;
  t.regex(d.lastExit, /SIGKILL/);
});

test.serial("a restarted management picks up the desired state from Redis", async (t) => {
  await stack.management.proc.stop("SIGTERM", 20_000);
  // Management drains its workers when it stops.
  t.true(await eventually(async () => (await stack.liveWorkers("adder-model")) === 0, 20_000), "workers stopped with management");
  await stack.startManagement();
  t.true(await eventually(async () => (await stack.liveWorkers("adder-model")) === 2, 30_000), "two workers again");
  t.is((await stack.predict.predict({ app: "adder", input: { doubles: [5] } })).output, "5");
});

test.serial("a management killed outright leaves its workers serving, and its successor adopts them", async (t) => {
  const before = (await workerPids()).sort();
  t.is(before.length, 2);
  await stack.management.proc.stop("SIGKILL");
  // The workers are in their own process groups: they outlive a crashed management and keep serving.
  t.is((await stack.predict.predict({ app: "adder", input: { doubles: [3, 4] } })).output, "7");
  t.is(await stack.liveWorkers("adder-model"), 2);
  await stack.startManagement();
  const d = (await stack.admin.listDeployments({ modelName: "adder-model" })).deployments[0]!;
  t.is(d.runningProcesses, 2, "adopted, not started again");
  t.deepEqual((await workerPids()).sort(), before);
  // Adopted workers are still managed: scaling down stops one of them.
  await stack.admin.setNumReplicas({ modelName: "adder-model", numReplicas: 1 });
  t.true(await eventually(async () => (await workerPids()).length === 1 && (await stack.liveWorkers("adder-model")) === 1, 20_000));
  t.is((await workerPids()).length, 1, "one worker process");
  t.is(await stack.liveWorkers("adder-model"), 1, "one live replica");
  await stack.admin.setNumReplicas({ modelName: "adder-model", numReplicas: 2 });
  t.true(await eventually(async () => (await stack.liveWorkers("adder-model")) === 2, 30_000));
});

test.serial("errors: unmanaged versions, bad workers, bad counts", async (t) => {
  await stack.admin.registerModel({ name: "by-hand", version: "1", inputType: "doubles" });
  t.is(await codeOf(stack.admin.setNumReplicas({ modelName: "by-hand", numReplicas: 2 })), status.FAILED_PRECONDITION);
  t.is(await codeOf(stack.admin.setNumReplicas({ modelName: "no-such-model", numReplicas: 2 })), status.NOT_FOUND);
  t.is(await codeOf(stack.admin.setNumReplicas({ modelName: "adder-model", numReplicas: 1000 })), status.INVALID_ARGUMENT);
  const deploy = (worker: object, extra: object = {}) =>
    codeOf(stack.admin.deployModel({ name: "bad", version: "1", inputType: "doubles", numReplicas: 1, worker, ...extra }));
  t.is(await deploy({ module: "/no/such/model.js" }), status.INVALID_ARGUMENT);
  t.is(await deploy({ module: "relative.js" }), status.INVALID_ARGUMENT);
  t.is(await deploy({}), status.INVALID_ARGUMENT);
  t.is(await deploy({ module: SUM }, { inputType: "strings", name: "adder-model", version: "9" }), status.FAILED_PRECONDITION, "linked app takes doubles");
});

test.serial("deploy --no-cache --no-coalesce registers the version with that policy; a redeploy must not change it", async (t) => {
  const spec = { name: "draws", version: "1", inputType: "doubles", numReplicas: 1, worker: { module: SUM } };
  const res = await stack.admin.deployModel({ ...spec, noCache: true, noCoalesce: true });
  t.like(res.model, { noCache: true, noCoalesce: true });
  const db = await redisDb(stack.redis.url, 8);
  t.deepEqual(await db.hgetall("clipper-ts:model-policy:draws:1"), { cache: "off", coalesce: "off" });
  db.disconnect();
  const err = await stack.admin.deployModel(spec).then(() => null, (e: unknown) => e);
  t.true(isServiceError(err));
  if (isServiceError(err)) {
    t.is(err.code, status.FAILED_PRECONDITION);
    t.regex(err.details, /registered with cache off, coalescing off, not cache on, coalescing on/);
  }
  t.like((await stack.admin.deployModel({ ...spec, noCache: true, noCoalesce: true })).model, { noCache: true }, "the same policy redeploys");
  await stack.admin.deleteModelVersion({ name: "draws", version: "1" });
});

test.serial("a version whose workers keep crashing is not switched to", async (t) => {
  const res = stack.admin.deployModel(
    { name: "adder-model", version: "broken", inputType: "doubles", numReplicas: 1, worker: { command: [process.execPath, "-e", "process.exit(3)"] } },
  );
  const err = await res.then(() => null, (e: unknown) => e);
  t.true(isServiceError(err));
  if (isServiceError(err)) {
    t.is(err.code, status.DEADLINE_EXCEEDED);
    t.regex(err.details, /exit code 3/);
  }
  const models = (await stack.admin.listModels({ name: "adder-model" })).models;
  t.is(models.find((m) => m.isCurrentVersion)?.version, "1");
  t.false(models.some((m) => m.version === "broken"));
  t.is((await stack.predict.predict({ app: "adder", input: { doubles: [1, 1] } })).output, "2");
});

test.serial("deleting a managed version stops its workers for good", async (t) => {
  await stack.admin.deployModel({ name: "scratch", version: "1", inputType: "doubles", numReplicas: 1, worker: { module: SUM } });
  t.is(await stack.liveWorkers("scratch"), 1);
  await stack.admin.deleteModelVersion({ name: "scratch", version: "1" });
  t.true(await eventually(async () => (await stack.heartbeat.listWorkers({ modelName: "scratch" })).workers.length === 0, 20_000));
  t.false((await stack.admin.listDeployments({})).deployments.some((d) => d.modelName === "scratch"));
});
