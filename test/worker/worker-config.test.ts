import test from "ava";
import { parseWorkerConfig } from "../../worker/worker-config.js";

const required = ["--model", "m", "--version", "1", "--module", "./model.js"];

test("defaults: doubles, local gateway, concurrency 1, no batch limit, 1 s heartbeat", (t) => {
  const r = parseWorkerConfig(required, {});
  t.is(r.kind, "ok");
  if (r.kind === "ok") {
    t.like(r.config, { model: "m", version: "1", inputType: "doubles", gateway: "tcp://127.0.0.1:7000", module: "./model.js", concurrency: 1, maxBatchSize: 0, heartbeatMs: 1000 });
  }
});

test("CLIPPER_* env variables fill in for flags, and flags win", (t) => {
  const env = {
    CLIPPER_MODEL_NAME: "env-model",
    CLIPPER_MODEL_VERSION: "7",
    CLIPPER_INPUT_TYPE: "ints",
    CLIPPER_GATEWAY: "tcp://gw.internal:7001",
    CLIPPER_MODULE: "/m.js",
    CLIPPER_WORKER_CONCURRENCY: "3",
    CLIPPER_MAX_BATCH_SIZE: "16",
    CLIPPER_HEARTBEAT_MS: "250",
  };
  const r = parseWorkerConfig(["--version", "8"], env);
  t.is(r.kind, "ok");
  if (r.kind === "ok") {
    t.like(r.config, { model: "env-model", version: "8", inputType: "ints", gateway: "tcp://gw.internal:7001", module: "/m.js", concurrency: 3, maxBatchSize: 16, heartbeatMs: 250 });
  }
});

test("bad values are errors that name the flag", (t) => {
  const cases: [string[], RegExp][] = [
    [["--version", "1", "--module", "x"], /--model is required/],
    [["--model", "m", "--module", "x"], /--version is required/],
    [["--model", "a,b", "--version", "1", "--module", "x"], /--model.*','/],
    [["--model", "m", "--version", "1:2", "--module", "x"], /--version.*':'/],
    [[...required, "--input-type", "tensor"], /--input-type: 'tensor' is not a valid input type/],
    [[...required, "--gateway", "http://127.0.0.1:7000"], /--gateway: .*tcp:\/\/HOST:PORT/],
    [[...required, "--gateway", "tcp://127.0.0.1:0"], /--gateway/],
    [[...required, "--gateway", "tcp://127.0.0.1"], /--gateway/],
    [["--model", "m", "--version", "1"], /--module is required/],
    [[...required, "--concurrency", "0"], /--concurrency must be at least 1/],
    [[...required, "--concurrency", "two"], /--concurrency/],
    [[...required, "--heartbeat-ms", "1"], /--heartbeat-ms must be at least/],
    [[...required, "--bogus", "1"], /bogus/],
  ];
  for (const [argv, pattern] of cases) {
    const r = parseWorkerConfig(argv, {});
    t.is(r.kind, "error", argv.join(" "));
    if (r.kind === "error") t.regex(r.error, pattern);
  }
});

test("--help lists every flag with its env variable", (t) => {
  const r = parseWorkerConfig(["--help"], {});
  t.is(r.kind, "help");
  if (r.kind === "help") for (const env of ["CLIPPER_MODEL_NAME", "CLIPPER_GATEWAY", "CLIPPER_WORKER_CONCURRENCY", "CLIPPER_HEARTBEAT_MS"]) t.true(r.text.includes(env));
});

test("a bracketed IPv6 gateway is accepted", (t) => {
  t.is(parseWorkerConfig([...required, "--gateway", "tcp://[::1]:7000"], {}).kind, "ok");
});

test("--metrics-port is off by default, 0 or a port turns it on, anything else is an error naming the flag", (t) => {
  const off = parseWorkerConfig(required, {});
  t.like(off.kind === "ok" ? off.config : {}, { metricsPort: null, metricsHost: "127.0.0.1" });
  const on = parseWorkerConfig([...required, "--metrics-port", "0"], { CLIPPER_WORKER_METRICS_HOST: "0.0.0.0" });
  t.like(on.kind === "ok" ? on.config : {}, { metricsPort: 0, metricsHost: "0.0.0.0" });
  const env = parseWorkerConfig(required, { CLIPPER_WORKER_METRICS_PORT: "9464" });
  t.like(env.kind === "ok" ? env.config : {}, { metricsPort: 9464 });
  for (const bad of ["abc", "70000", "-1"]) {
    const r = parseWorkerConfig([...required, `--metrics-port=${bad}`], {});
    t.is(r.kind, "error", bad);
    if (r.kind === "error") t.regex(r.error, /--metrics-port/);
  }
});
