import { execFile } from "node:child_process";
import { resolve } from "node:path";
import test from "ava";
import { Dealer } from "zeromq";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { ManagedStack } from "../helpers/managed-stack.js";
import { eventually, ROOT } from "../helpers/processes.js";
import { Scrape } from "../helpers/prometheus.js";
import { Stack } from "../helpers/stack.js";
import { E, hex, receive } from "../helpers/zmq-frames.js";

const HANGS = "test/fixtures/models/hangs-on-7.js";

interface ListedWorker {
  replicaId: number;
  quarantined: boolean;
  draining: boolean;
  inFlight: number;
}

// The SLO (900 ms) is shorter than the batch timeout (its floor, 1000 ms):
// by the time the hung batch times out, its caller has had the default, so
// the input is not sent to the other replica.
test.serial("a replica whose model hangs is quarantined; calls keep being answered by the other replica", async (t) => {
  const stack = await Stack.start(["--cache-bytes", "0", "--batch-timeout-ms", "1500"]);
  try {
    await stack.deploy("ha", "hm", "1", "doubles", { sloMicros: 900_000 });
    await stack.worker("hm", "1", "doubles", HANGS);
    await stack.worker("hm", "1", "doubles", HANGS);
    const predict = (x: number[]) => call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "ha", input: { doubles: x } }), { deadlineMs: 10_000 });
    const workers = async (): Promise<ListedWorker[]> => {
      const r = await call<unknown, any>(stack.heartbeat, "listWorkers", { modelName: "hm" });
      return r.ok ? r.value.workers : [];
    };

    // The stuck call goes first, alone, so no other query shares its batch.
    const stuck = predict([7]);
    t.true(await eventually(async () => (await workers()).some((w) => w.inFlight > 0), 10_000, 10), "the stuck batch reached a worker");
    const results = { calls: 0, model: 0, defaulted: 0, failed: 0, afterQuarantine: 0 };
    let quarantined = false;
    // Each caller goes on until 10 of its calls came after the quarantine (at most 100 calls).
    let afterMine = 0;
    const caller = async (c: number): Promise<void> => {
      for (let i = 0, after = 0; i < 100 && after < 10; i++) {
        if (quarantined) after++;
        if (after === 10) afterMine++;
        const r = await predict([c, i]);
        results.calls++;
        if (!r.ok) results.failed++;
        else if (r.value.default) results.defaulted++;
        else if (r.value.output === String(c + i)) {
          results.model++;
          if (quarantined) results.afterQuarantine++;
        }
        await new Promise((resolve) => setTimeout(resolve, 40));
      }
    };
    const watch = (async () => {
      quarantined = await eventually(async () => (await workers()).some((w) => w.quarantined), 15_000, 20);
    })();
    await Promise.all([0, 1, 2, 3].map(caller));
    await watch;
    const s = await stuck;
    t.log(`${results.calls} calls: ${results.model} answered by the model (${results.afterQuarantine} after the quarantine), ${results.defaulted} defaults, ${results.failed} failed`);
    t.true(s.ok && s.value.default, "the stuck caller gets the app's default at its SLO");
    t.true(quarantined, "the hung replica shows as quarantined");
    t.is(results.failed, 0);
    t.is(results.defaulted, 0, "no call waits on the hung replica");
    t.is(results.model, results.calls);
    t.true(results.afterQuarantine >= 40, "every caller made 10 calls after the quarantine");
    t.is(afterMine, 4);
    const listed = await workers();
    t.is(listed.length, 2);
    t.is(listed.filter((w) => w.quarantined).length, 1);
    const m = await Scrape.of(`http://127.0.0.1:${stack.gateway.http}/metrics`);
    t.is(m.value("clipper_replica_quarantines_total", { model: "hm", version: "1" }), 1);
  } finally {
    await stack.close();
  }
});

// Under the replica manager, the quarantined worker is asked to drain; its
// model timeout answers the stuck batch, and as the model never returns, the
// worker exits 1 and the manager starts a fresh one.
test.serial("under the replica manager, a quarantined worker whose model hangs is restarted", async (t) => {
  const stack = await ManagedStack.start({ gatewayArgs: ["--batch-timeout-ms", "1500"] });
  try {
    await stack.admin.createApp({ name: "ha", inputType: "doubles", defaultOutput: "-1", latencySloMicros: 900_000 });
    await stack.admin.deployModel({
      name: "hm", version: "1", inputType: "doubles", numReplicas: 2,
      worker: { module: resolve(ROOT, HANGS), concurrency: 1, env: { CLIPPER_MODEL_TIMEOUT_MS: "3000" } },
    });
    await stack.admin.linkModel({ app: "ha", model: "hm" });
    t.true(await eventually(async () => (await stack.liveWorkers("hm")) === 2, 20_000));
    const before = (await stack.heartbeat.listWorkers({ modelName: "hm" })).workers.map((w) => w.replicaId);

    const stuck = await stack.predict.predict({ app: "ha", input: { doubles: [7] } });
    t.true(stuck.default, "the stuck caller gets the default at its SLO");
    t.true(await eventually(async () => (await stack.heartbeat.listWorkers({ modelName: "hm" })).workers.some((w) => w.quarantined), 10_000, 20), "shown as quarantined");
    const listed = await new Promise<string>((done) => {
      execFile(process.execPath, ["bin/clipper.js", "workers", "list", "hm", ...stack.cliFlags], { cwd: ROOT, timeout: 30_000 }, (_err, stdout) => done(stdout));
    });
    t.regex(listed, /quarantined/, "clipper workers list shows the state");
    t.regex(listed, /serving/);
    const ok = await stack.predict.predict({ app: "ha", input: { doubles: [1, 2] } });
    t.false(ok.default, "the other replica answers meanwhile");
    t.is(ok.output, "3");

    // Restarted: two serving workers again, one of them new; the deployment counts the restart.
    t.true(
      await eventually(async () => {
        const ws = (await stack.heartbeat.listWorkers({ modelName: "hm" })).workers;
        return ws.length === 2 && ws.every((w) => !w.quarantined && !w.draining) && ws.some((w) => !before.includes(w.replicaId));
      }, 30_000, 100),
      "a fresh worker replaces the hung one",
    );
    const d = (await stack.admin.listDeployments({ modelName: "hm" })).deployments[0]!;
    t.true(d.restarts >= 1, `restarts ${d.restarts}`);
    const after = await stack.predict.predict({ app: "ha", input: { doubles: [2, 2] } });
    t.is(after.output, "4");
  } finally {
    await stack.close();
  }
});


// A Clipper v3 container cannot be asked to drain. Once quarantined it takes
// nothing new; when its late answer comes, it is forgotten, and on its next
// heartbeat it registers again as a new replica.
test.serial("a Clipper v3 container past the batch timeout is quarantined, and registers afresh once it answers", async (t) => {
  const stack = await Stack.start(["--batch-timeout-ms", "300"]);
  const d = new Dealer({ linger: 0 });
  try {
    await stack.deploy("va", "vm", "1", "doubles", { sloMicros: 200_000 });
    d.connect(`tcp://127.0.0.1:${stack.gateway.rpc}`);
    const register = async (): Promise<void> => {
      await d.send([E, hex("02000000")]);
      t.deepEqual(await receive(d), ["", "03000000", "02000000", "01000000"], "asked to register");
      await d.send([E, hex("00000000"), Buffer.from("vm"), Buffer.from("1"), Buffer.from("3"), hex("03000000")]);
    };
    const workers = async (): Promise<ListedWorker[]> => {
      const r = await call<unknown, any>(stack.heartbeat, "listWorkers", { modelName: "vm" });
      return r.ok ? r.value.workers : [];
    };
    await register();
    t.true(await eventually(async () => (await workers()).length === 1));

    const answer = stack.http("/va/predict", { input: [1.0] });
    const request = await receive(d);
    t.true((await answer).json.default, "the SLO passes first");
    t.true(await eventually(async () => (await workers()).some((w) => w.quarantined), 10_000, 20), "quarantined past the timeout");
    t.true((await stack.http("/va/predict", { input: [2.0] })).json.default, "nothing goes to a quarantined container");

    // The late answer, exactly as rpc.py sends it.
    await d.send([E, hex("01000000"), hex(request[3]!), hex("1000000000000000"), hex("0100000000000000 0100000000000000"), Buffer.from("1")]);
    t.true(await eventually(async () => (await workers()).length === 0), "forgotten");
    await register();
    t.true(await eventually(async () => (await workers()).some((w) => w.replicaId === 1 && !w.quarantined)), "a new replica");
    const m = await Scrape.of(`http://127.0.0.1:${stack.gateway.http}/metrics`);
    t.is(m.value("clipper_replica_quarantines_total", { model: "vm", version: "1" }), 1);
  } finally {
    d.close();
    await stack.close();
  }
});
