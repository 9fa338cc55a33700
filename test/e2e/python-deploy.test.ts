/**
 * A real scikit-learn model on the Python worker, deployed by the replica
 * manager through `clipper models deploy --python`, answering through the
 * gateway; a rollout to a new version and a rollback under traffic fail no
 * call, as for --module deployments.
 */
import test from "ava";
import { status } from "@grpc/grpc-js";
import { isServiceError } from "../../clients/client.js";
import { eventually, spawnBin } from "../helpers/processes.js";
import { ManagedStack } from "../helpers/managed-stack.js";

let stack: ManagedStack;

test.before(async () => {
  stack = await ManagedStack.start();
  await stack.admin.createApp({ name: "iris", inputType: "doubles", defaultOutput: "DEFAULT", latencySloMicros: 2_000_000 });
});

test.after.always(async () => {
  await stack?.close();
});

/** `clipper ARGS…` against the stack, from the checkout root; its exit code and output. */
async function cli(args: string[]): Promise<{ code: number | null | "timeout"; output: string }> {
  const p = spawnBin("clipper", [...args, ...stack.cliFlags]);
  const code = await p.waitExit(120_000);
  return { code, output: p.output };
}

const species = async (x: number[]): Promise<string> => {
  const r = await stack.predict.predict({ app: "iris", input: { doubles: x } });
  return r.default ? "DEFAULT" : r.output;
};

test.serial("clipper models deploy --python serves the iris classifier: setosa and virginica", async (t) => {
  const deployed = await cli(["models", "deploy", "iris", "--version", "1", "--input-type", "doubles", "--replicas", "2", "--python", "examples/iris/model.py"]);
  t.is(deployed.code, 0, deployed.output);
  t.regex(deployed.output, /deployed iris:1 with 2 replicas/);
  await stack.admin.linkModel({ app: "iris", model: "iris" });
  t.is(await species([5.1, 3.5, 1.4, 0.2]), "setosa");
  t.is(await species([6.7, 3.0, 5.2, 2.3]), "virginica");
  // A wrong-sized input is the model's item error, INVALID_ARGUMENT to its caller.
  const err = await stack.predict.predict({ app: "iris", input: { doubles: [1, 2] } }).then(() => null, (e: unknown) => e);
  t.true(isServiceError(err) && err.code === status.INVALID_ARGUMENT && /an iris is 4 doubles/.test(err.details), String(err));
  const listed = await cli(["replicas", "list", "iris"]);
  t.regex(listed.output, /python \/\S+\/examples\/iris\/model\.py/);
  // A Python file that is not there is refused before anything starts.
  const missing = await cli(["models", "deploy", "iris", "--version", "9", "--input-type", "doubles", "--python", "examples/iris/nope.py"]);
  t.is(missing.code, 1);
  t.regex(missing.output, /INVALID_ARGUMENT: Python model \S+nope\.py does not exist on the management host/);
});

test.serial("a rollout to version 2 and a rollback to 1 under traffic fail no call", async (t) => {
  const failures: string[] = [];
  let calls = 0;
  let running = true;
  const lanes = Array.from({ length: 4 }, async () => {
    const end = Date.now() + 120_000;
    while (running && Date.now() < end) {
      try {
        const s = await species([6.7, 3.0, 5.2, 2.3]);
        if (s !== "virginica") failures.push(s);
      } catch (err) {
        failures.push(String(err));
      }
      calls++;
    }
  });
  const v2 = await cli(["models", "deploy", "iris", "--version", "2", "--input-type", "doubles", "--python", "examples/iris/model.py:predict"]);
  t.is(v2.code, 0, v2.output);
  const back = await cli(["models", "set-version", "iris", "1"]);
  t.is(back.code, 0, back.output);
  t.true(await eventually(async () => (await stack.liveWorkers("iris", "2")) === 0, 30_000), "version 2's replicas drained");
  running = false;
  await Promise.all(lanes);
  t.log(`${calls} calls during the rollout and rollback`);
  t.true(calls > 0);
  t.deepEqual(failures, []);
});
