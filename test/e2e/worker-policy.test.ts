/**
 * What management lets a deployment run, and what its workers see: command
 * deploys only with --allow-worker-commands (saved ones too, after a
 * restart), modules only under --worker-module-root, and an allow-listed
 * environment in every worker process.
 */
import test from "ava";
import { copyFileSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { status } from "@grpc/grpc-js";
import { isServiceError } from "../../clients/client.js";
import { eventually, ROOT } from "../helpers/processes.js";
import { redisDb } from "../helpers/redis-dump.js";
import { ManagedStack } from "../helpers/managed-stack.js";

const SUM = resolve(ROOT, "test/fixtures/models/sum.js");
const WORKER_BIN = resolve(ROOT, "bin/clipper-worker.js");
/** A worker program given as a command: clipper-worker itself, serving sum.js. */
const SUM_COMMAND = [process.execPath, WORKER_BIN, "--module", SUM];

const root = mkdtempSync(join(tmpdir(), "clipper-module-root-"));
copyFileSync(resolve(ROOT, "test/fixtures/models/env-reporter.js"), join(root, "env-reporter.js"));
// The module is ESM, as it is in the checkout; say so, as a project folder would.
writeFileSync(join(root, "package.json"), '{ "type": "module" }\n');
// A link inside the root to a module outside it.
symlinkSync(SUM, join(root, "linked-sum.js"));

/** What management has in its environment and must keep from its workers. */
const SECRETS = {
  CLIPPER_WORKER_KEYS: "/etc/clipper/worker-keys",
  CLIPPER_TOKEN: "s3cret-token",
  CLIPPER_REDIS_URL: "redis://:s3cret@127.0.0.1:1",
  REDIS_PASSWORD: "s3cret",
  OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer s3cret",
  NODE_OPTIONS: "--max-old-space-size=512",
};

let stack: ManagedStack;

test.before(async () => {
  stack = await ManagedStack.start({
    managementArgs: ["--worker-module-root", root],
    managementEnv: { ...SECRETS, LC_TIME: "C", OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test" },
  });
  await stack.admin.createApp({ name: "policy-app", inputType: "doubles", defaultOutput: "-1", latencySloMicros: 2_000_000 });
});

test.after.always(async () => {
  await stack?.close();
  rmSync(root, { recursive: true, force: true });
});

async function refusal(p: Promise<unknown>): Promise<{ code: number; details: string } | null> {
  const err = await p.then(() => null, (e: unknown) => e);
  return isServiceError(err) ? { code: err.code, details: err.details } : null;
}

const deploy = (name: string, worker: object) => stack.admin.deployModel({ name, version: "1", inputType: "doubles", numReplicas: 1, worker });

test.serial("modules are limited to --worker-module-root, symlinks resolved", async (t) => {
  const outside = await refusal(deploy("outside", { module: SUM }));
  t.is(outside?.code, status.PERMISSION_DENIED);
  t.regex(outside?.details ?? "", /--worker-module-root/);
  const linked = await refusal(deploy("linked", { module: join(root, "linked-sum.js") }));
  t.is(linked?.code, status.PERMISSION_DENIED, "a link under the root to a file outside it is outside");
  // A Python model file is limited the same way; a module name cannot be placed under a root at all.
  const python = await refusal(deploy("py-outside", { python: resolve(ROOT, "examples/iris/model.py") }));
  t.is(python?.code, status.PERMISSION_DENIED);
  t.regex(python?.details ?? "", /model\.py is not under --worker-module-root/);
  const named = await refusal(deploy("py-named", { python: "json:dumps" }));
  t.is(named?.code, status.PERMISSION_DENIED);
  t.regex(named?.details ?? "", /Python module name 'json' cannot be checked against --worker-module-root/);
  t.is((await stack.admin.listDeployments({})).deployments.length, 0);
  t.is((await deploy("env-model", { module: join(root, "env-reporter.js"), env: { SPEC_VAR: "from-spec" } })).numReplicas, 1);
});

test.serial("a worker gets the allow-listed environment, its spec's variables and who it is, never management's secrets", async (t) => {
  await stack.admin.linkModel({ app: "policy-app", model: "env-model" });
  const report = JSON.parse((await stack.predict.predict({ app: "policy-app", input: { doubles: [1] } })).output) as {
    clipper: string[];
    values: Record<string, string | null>;
  };
  t.deepEqual(report.clipper, [
    "CLIPPER_GATEWAY",
    "CLIPPER_INPUT_TYPE",
    "CLIPPER_IP",
    "CLIPPER_LOG_LEVEL",
    "CLIPPER_MODEL_NAME",
    "CLIPPER_MODEL_VERSION",
    "CLIPPER_PORT",
    // Passed on by the stack's --worker-inherit-env.
    "CLIPPER_TEST_MARKER",
  ]);
  t.is(report.values.SPEC_VAR, "from-spec");
  t.is(report.values.LC_TIME, "C");
  t.is(report.values.OTEL_RESOURCE_ATTRIBUTES, "deployment.environment=test");
  t.is(report.values.PATH, process.env.PATH ?? null);
  t.is(report.values.CLIPPER_TEST_MARKER, stack.marker);
  for (const name of ["REDIS_PASSWORD", "OTEL_EXPORTER_OTLP_HEADERS", "NODE_OPTIONS"]) t.is(report.values[name], null, name);
});

test.serial("a command deployment runs with --allow-worker-commands; restarted without it, management refuses it and does not start the saved one", async (t) => {
  t.is((await deploy("cmd-model", { command: SUM_COMMAND })).numReplicas, 1);
  t.is(await stack.liveWorkers("cmd-model"), 1);

  stack.allowWorkerCommands = false;
  await stack.management.proc.stop("SIGTERM", 20_000);
  await stack.startManagement();
  t.true(await eventually(() => /saved deployment not started/.test(stack.management.proc.output), 15_000), "the refusal is logged");
  t.regex(stack.management.proc.output, /cmd-model/);
  t.true(await eventually(async () => (await stack.liveWorkers("cmd-model")) === 0, 30_000), "the saved command deployment's worker is gone");
  t.deepEqual((await stack.admin.listDeployments({})).deployments.map((d) => d.modelName), ["env-model"]);
  t.true(await eventually(async () => (await stack.liveWorkers("env-model")) === 1, 30_000), "the module deployment runs again");
  const denied = await refusal(deploy("cmd-model-2", { command: SUM_COMMAND }));
  t.is(denied?.code, status.PERMISSION_DENIED);
  t.regex(denied?.details ?? "", /--allow-worker-commands/);
  // Its record stays, so a management allowed to run commands brings it back.
  const db = await redisDb(stack.redis.url, 8);
  t.is((await db.hgetall("clipper-ts:deployment:cmd-model:1")).replicas, "1");
  db.disconnect();

  stack.allowWorkerCommands = true;
  await stack.management.proc.stop("SIGTERM", 20_000);
  await stack.startManagement();
  t.true(await eventually(async () => (await stack.liveWorkers("cmd-model")) === 1, 30_000), "started again with the flag");
});
