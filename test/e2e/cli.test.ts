import test from "ava";
import { execFile } from "node:child_process";
import { ROOT, spawnBin } from "../helpers/processes.js";
import { ManagedStack } from "../helpers/managed-stack.js";

let stack: ManagedStack;

test.before(async () => {
  stack = await ManagedStack.start();
});

test.after.always(async () => {
  await stack?.close();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `clipper ARGS…` against the stack (bounded), with `input` on stdin. */
function clipper(args: readonly string[], options: { input?: string; flags?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ["bin/clipper.js", ...args, ...(options.flags === false ? [] : stack.cliFlags)],
      { cwd: ROOT, timeout: 60_000, env: { ...process.env, ...options.env } },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr }),
    );
    child.stdin!.end(options.input ?? "");
  });
}

const json = (r: Run): any => JSON.parse(r.stdout);

test.serial("apps: create, list, get, delete, with --json shapes and exit codes", async (t) => {
  let r = await clipper(["apps", "create", "cli-app", "--input-type", "doubles", "--default-output", "none", "--slo-micros", "5000000", "--json"]);
  t.is(r.code, 0, r.stderr);
  t.like(json(r).app, { name: "cli-app", inputType: "doubles", defaultOutput: "none", latencySloMicros: 5000000, policy: "DefaultOutputSelectionPolicy" });
  t.deepEqual(json(r).app.linkedModels, [], "default values are printed too");
  r = await clipper(["apps", "create", "cli-app", "--input-type", "doubles"]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^clipper: ALREADY_EXISTS: application 'cli-app' already exists\n$/);
  r = await clipper(["apps", "create", "cli-app", "--input-type", "doubles", "--json"]);
  t.is(json({ ...r, stdout: r.stderr }).error.code, "ALREADY_EXISTS");
  r = await clipper(["apps", "list", "--json"]);
  t.is(r.code, 0);
  t.deepEqual(json(r).apps.map((a: { name: string }) => a.name), ["cli-app"]);
  r = await clipper(["apps", "list"]);
  t.regex(r.stdout, /^NAME\s+INPUT TYPE\s+MODEL\s+SLO \(µs\)\s+DEFAULT OUTPUT\ncli-app\s+doubles\s+-\s+5000000\s+"none"\n$/);
  r = await clipper(["apps", "get", "nope"]);
  t.is(r.code, 1);
  t.is(r.stderr.split("\n").length, 2, "one line");
  t.regex(r.stderr, /NOT_FOUND/);
});

test.serial("models deploy, link, predict (one and many), replicas set and list, workers, status", async (t) => {
  let r = await clipper([
    "models", "deploy", "cli-model", "--version", "1", "--input-type", "doubles", "--replicas", "1", "--module", "test/fixtures/models/sum.js", "--labels", "a,b", "--json",
  ]);
  t.is(r.code, 0, r.stderr);
  const d = json(r);
  t.is(d.numReplicas, 1);
  t.is(d.previousVersion, "");
  t.like(d.model, { name: "cli-model", version: "1", inputType: "doubles", labels: ["a", "b"], isCurrentVersion: true, valid: true, batchSize: -1 });

  r = await clipper(["link", "cli-app", "cli-model", "--json"]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(json(r).app.linkedModels, ["cli-model"]);

  r = await clipper(["models", "list", "--json"]);
  t.deepEqual(json(r).models.map((m: { name: string; version: string }) => `${m.name}:${m.version}`), ["cli-model:1"]);
  r = await clipper(["models", "get", "cli-model", "--json"]);
  t.is(json(r).model.version, "1");

  r = await clipper(["predict", "cli-app", "--input", '{"doubles":[1,2,3.5]}', "--json"]);
  t.is(r.code, 0, r.stderr);
  t.like(json(r), { output: "6.5", default: false, model: "cli-model", modelVersion: "1" });
  t.is(typeof json(r).queryId, "number");
  r = await clipper(["predict", "cli-app", "--input", '{"doubles":[1,2]}']);
  t.is(r.stdout, "3\n");

  r = await clipper(["predict", "cli-app", "--json"], { input: '{"doubles":[1]}\n{"doubles":[1,1]}\n\n{"input":{"doubles":[1,1,1]}}\n' });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split("\n").map((l) => JSON.parse(l).output), ["1", "2", "3"]);
  const summary = JSON.parse(r.stderr.trim()).summary;
  t.like(summary, { count: 3, ok: 3, defaults: 0, failed: 0 });
  t.is(typeof summary.p99Ms, "number");
  r = await clipper(["predict", "cli-app"], { input: '{"doubles":[1]}\n{"text":"oops"}\n' });
  t.is(r.code, 1, "a failed query fails the run");
  t.regex(r.stdout, /^1\nERROR INVALID_ARGUMENT: /);
  t.regex(r.stderr, /2 queries in .* 1 answered, 0 default, 1 failed; latency p50/);

  r = await clipper(["replicas", "set", "cli-model", "2", "--json"]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(json(r), { modelName: "cli-model", modelVersion: "1", numReplicas: 2, registeredReplicas: 2 });
  r = await clipper(["replicas", "list", "--json"]);
  t.is(json(r).replicas.length, 2);
  t.like(json(r).deployments[0], { modelName: "cli-model", modelVersion: "1", desiredReplicas: 2, registeredReplicas: 2, isCurrentVersion: true });
  r = await clipper(["replicas", "list"]);
  t.regex(r.stdout, /Managed by the replica manager:/);

  r = await clipper(["workers", "list", "--json"]);
  t.is(json(r).workers.length, 2);
  t.like(json(r).workers[0], { modelName: "cli-model", modelVersion: "1", dialect: "DIALECT_NATIVE", draining: false });

  r = await clipper(["status", "--json"]);
  t.is(r.code, 0, r.stderr);
  t.like(json(r), { management: { ok: true }, gateway: { ok: true }, workers: 2 });
  t.deepEqual(json(r).apps, [{ name: "cli-app", inputType: "doubles", model: "cli-model", version: "1", liveReplicas: 2 }]);
});

test.serial("workers watch prints the live workers as JSON lines and ends cleanly on Ctrl-C", async (t) => {
  const watch = spawnBin("clipper", ["workers", "watch", "cli-model", "--json", ...stack.cliFlags]);
  await watch.waitFor(/"kind":"KIND_EXISTING"/);
  const first = JSON.parse(watch.output.split("\n")[0]!);
  t.like(first, { kind: "KIND_EXISTING", worker: { modelName: "cli-model", modelVersion: "1" } });
  t.is(await watch.stop("SIGINT"), 0);
});

test.serial("register, set-version, delete-version, unlink and delete", async (t) => {
  let r = await clipper(["models", "register", "cli-model", "--version", "2", "--input-type", "doubles", "--json"]);
  t.is(r.code, 0, r.stderr);
  t.true(json(r).model.isCurrentVersion);
  r = await clipper(["models", "set-version", "cli-model", "1", "--json"]);
  t.is(r.code, 0, r.stderr);
  t.like(json(r).model, { version: "1", isCurrentVersion: true });
  r = await clipper(["models", "delete-version", "cli-model", "2"]);
  t.is(r.code, 0, r.stderr);
  r = await clipper(["models", "delete-version", "cli-model", "2"]);
  t.is(r.code, 1);
  // Marked invalid, then removed by the gateway: either answer is a failure.
  t.regex(r.stderr, /^clipper: (FAILED_PRECONDITION|NOT_FOUND): /);
  r = await clipper(["unlink", "cli-app", "cli-model", "--json"]);
  t.deepEqual(json(r).app.linkedModels, []);
  r = await clipper(["apps", "delete", "cli-app", "--json"]);
  t.is(r.code, 0);
  t.deepEqual(json(r), {});
});

test("usage errors exit 2 with one line; --help exits 0", async (t) => {
  let r = await clipper(["bogus"], { flags: false });
  t.is(r.code, 2);
  t.regex(r.stderr, /^clipper: unknown command 'bogus'/);
  r = await clipper(["apps", "create"], { flags: false });
  t.is(r.code, 2);
  t.is(r.stderr.split("\n").length, 2);
  r = await clipper(["apps", "create", "x", "--input-type"], { flags: false });
  t.is(r.code, 2);
  r = await clipper(["predict", "x", "--input", "[1,2]"]);
  t.is(r.code, 2);
  t.regex(r.stderr, /expected an Input such as/);
  r = await clipper(["models", "deploy", "m", "--version", "1", "--input-type", "doubles"]);
  t.is(r.code, 2);
  t.regex(r.stderr, /give exactly one of --module PATH, --python PATH_OR_MODULE and -- COMMAND/);
  r = await clipper(["models"], { flags: false });
  t.is(r.code, 2);
  t.regex(r.stdout, /clipper models deploy/);
  for (const args of [["--help"], ["apps", "create", "--help"], ["models", "deploy", "--help"], ["up", "--help"], ["predict", "-h"], ["workers", "watch", "--help"]]) {
    r = await clipper(args, { flags: false });
    t.is(r.code, 0, args.join(" "));
    t.regex(r.stdout, /Usage: clipper/);
  }
});

test("an unreachable server exits 3; addresses come from flags or env", async (t) => {
  let r = await clipper(["apps", "list", "--management", "127.0.0.1:1"], { flags: false });
  t.is(r.code, 3);
  t.regex(r.stderr, /^clipper: UNAVAILABLE: cannot reach management at 127.0.0.1:1 /);
  r = await clipper(["apps", "list", "--json"], { flags: false, env: { CLIPPER_MANAGEMENT_ADDR: `127.0.0.1:${stack.management.grpc}` } });
  t.is(r.code, 0, r.stderr);
  r = await clipper(["apps", "list"], { flags: false, env: { CLIPPER_MANAGEMENT_ADDR: "nonsense" } });
  t.is(r.code, 2);
});
