import test from "ava";
import { resolve } from "node:path";
import { isServiceError, statusName } from "../../clients/client.js";
import { eventually, ROOT } from "../helpers/processes.js";
import { ManagedStack } from "../helpers/managed-stack.js";

const V1 = resolve(ROOT, "test/fixtures/models/sum.js");
const V2 = resolve(ROOT, "test/fixtures/models/sum-v2.js");
/** Callers in the steady traffic. */
const LANES = 4;
/** Upper bound of one traffic run, in ms, whatever happens. */
const MAX_TRAFFIC_MS = 90_000;

let stack: ManagedStack;

test.before(async () => {
  stack = await ManagedStack.start();
  await stack.admin.createApp({ name: "calc", inputType: "doubles", defaultOutput: "DEFAULT", latencySloMicros: 2_000_000 });
  await stack.admin.deployModel({ name: "calc-model", version: "1", inputType: "doubles", numReplicas: 2, worker: { module: V1 } });
  await stack.admin.linkModel({ app: "calc", model: "calc-model" });
});

test.after.always(async () => {
  await stack?.close();
});

/** Steady traffic until stop() is called (or the bound passes); every answer and failure is counted. */
function traffic() {
  const outputs = new Map<string, number>();
  const failures: string[] = [];
  let running = true;
  const end = Date.now() + MAX_TRAFFIC_MS;
  const lane = async (): Promise<void> => {
    while (running && Date.now() < end) {
      try {
        const r = await stack.predict.predict({ app: "calc", input: { doubles: [1, 2, 3] } }, { deadlineMs: 10_000 });
        if (r.default) failures.push(`default output: ${r.defaultExplanation}`);
        else outputs.set(r.output, (outputs.get(r.output) ?? 0) + 1);
      } catch (err) {
        failures.push(isServiceError(err) ? `${statusName(err.code)}: ${err.details}` : String(err));
      }
    }
  };
  const lanes = Promise.all(Array.from({ length: LANES }, lane));
  return {
    outputs,
    failures,
    async stop(): Promise<void> {
      running = false;
      await lanes;
    },
  };
}

/** Waits (bounded) until `output` has been answered `more` more times than it had been when called. */
async function answeredAgain(load: ReturnType<typeof traffic>, output: string, more = LANES): Promise<boolean> {
  const before = load.outputs.get(output) ?? 0;
  return eventually(() => (load.outputs.get(output) ?? 0) >= before + more, 30_000, 10);
}

const runningOf = async (version: string): Promise<number> =>
  (await stack.admin.listDeployments({ modelName: "calc-model" })).deployments.find((d) => d.modelVersion === version)?.runningProcesses ?? 0;

test.serial("rolling out a new version under steady traffic fails no call", async (t) => {
  const load = traffic();
  // Steady traffic on version 1 before the rollout starts.
  t.true(await answeredAgain(load, "6"), "version 1 answers before the rollout");
  const res = await stack.admin.deployModel({ name: "calc-model", version: "2", inputType: "doubles", numReplicas: 2, worker: { module: V2 } });
  t.is(res.previousVersion, "1");
  // Keep the traffic on until the old version's workers are gone.
  t.true(await eventually(async () => (await runningOf("1")) === 0, 60_000), "version 1 drained");
  // And a while beyond: calls keep succeeding once only version 2 is left.
  t.true(await answeredAgain(load, "v2:6"), "version 2 answers after version 1 is gone");
  await load.stop();
  t.deepEqual(load.failures, []);
  t.true((load.outputs.get("6") ?? 0) > 0, "version 1 answered before the switch");
  t.true((load.outputs.get("v2:6") ?? 0) > 0, "version 2 answered after it");
  t.deepEqual([...load.outputs.keys()].sort(), ["6", "v2:6"]);
  t.is(await stack.liveWorkers("calc-model", "2"), 2);
});

test.serial("rolling back with set-version brings the old version up first and fails no call", async (t) => {
  const load = traffic();
  t.true(await answeredAgain(load, "v2:6"), "version 2 answers before the rollback");
  const res = await stack.admin.setModelVersion({ name: "calc-model", version: "1" });
  t.true(res.model!.isCurrentVersion);
  t.true(await eventually(async () => (await runningOf("2")) === 0, 60_000), "version 2 drained");
  t.true(await answeredAgain(load, "6"), "version 1 answers after version 2 is gone");
  await load.stop();
  t.deepEqual(load.failures, []);
  t.true((load.outputs.get("6") ?? 0) > 0);
  t.is(await stack.liveWorkers("calc-model", "1"), 2, "version 1 runs as many replicas as version 2 did");
});
