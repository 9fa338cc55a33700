import { status } from "@grpc/grpc-js";
import test from "ava";
import { PredictRequest } from "../../gen/clipper/v1/predict.js";
import { call } from "../helpers/grpc.js";
import { Scrape } from "../helpers/prometheus.js";
import { Stack } from "../helpers/stack.js";

let stack: Stack;

test.before(async () => {
  // No cache: every innocent call reaches the model.
  stack = await Stack.start(["--cache-bytes", "0"], { CLIPPER_LOG_LEVEL: "info" });
});

test.after.always(async () => {
  await stack?.close();
});

const CALLERS = 32;
const CALLS_PER_CALLER = 19; // 608 innocent calls in all

// One caller keeps sending an input the model throws on while 32 callers send
// normal inputs: batches holding the poison input fail as a whole, are split
// in halves until it is alone, and only the poison caller gets the error.
test.serial("a poison input fails only its own caller: 0 of 608 innocent calls fail", async (t) => {
  await stack.deploy("pa", "pm", "1", "doubles", { sloMicros: 5_000_000 });
  await stack.worker("pm", "1", "doubles", "test/fixtures/models/poison.js", ["--concurrency", "2"]);
  const predict = (x: number[]) => call<unknown, any>(stack.predict, "predict", PredictRequest.fromPartial({ app: "pa", input: { doubles: x } }), { deadlineMs: 10_000 });

  let innocentDone = false;
  const innocentFailures: string[] = [];
  const wrong: string[] = [];
  let defaults = 0;
  let answered = 0;
  const innocent = async (caller: number): Promise<void> => {
    for (let i = 0; i < CALLS_PER_CALLER; i++) {
      const x = [caller, i, 0.5];
      const r = await predict(x);
      if (!r.ok) innocentFailures.push(`${r.error.code}: ${r.error.details}`);
      else if (r.value.default) defaults++;
      else if (r.value.output !== String(caller + i + 0.5)) wrong.push(`${x} -> ${r.value.output}`);
      else answered++;
    }
  };
  const poisonResults: { ok: boolean; code?: number; details?: string }[] = [];
  const poison = async (): Promise<void> => {
    while (!innocentDone) {
      const r = await predict([13]);
      poisonResults.push(r.ok ? { ok: true } : { ok: false, code: r.error.code, details: r.error.details });
    }
  };
  const poisoning = poison();
  await Promise.all(Array.from({ length: CALLERS }, (_, c) => innocent(c)));
  innocentDone = true;
  await poisoning;

  t.log(`innocent: ${answered} answered by the model, ${defaults} defaults, ${innocentFailures.length} failed; poison calls: ${poisonResults.length}`);
  t.deepEqual(innocentFailures, [], "no innocent call fails");
  t.deepEqual(wrong, [], "every innocent answer is its own input's");
  t.true(poisonResults.length > 0);
  for (const p of poisonResults) {
    t.false(p.ok, "the poison call is never answered");
    t.is(p.code, status.INTERNAL);
    t.regex(p.details ?? "", /model pm:1 failed: cannot handle 13/);
  }

  const m = await Scrape.of(`http://127.0.0.1:${stack.gateway.http}/metrics`);
  const poisonItems = m.value("clipper_poison_items_total", { model: "pm", version: "1" }) ?? 0;
  const splits = m.value("clipper_batch_splits_total", { model: "pm", version: "1" }) ?? 0;
  t.log(`clipper_poison_items_total ${poisonItems}, clipper_batch_splits_total ${splits}`);
  t.is(poisonItems, poisonResults.length, "each poison call was failed alone once");
  t.true(splits > 0, "batches shared with the poison input were split");

  // The model's errors are summarized per model version, never one line per call.
  const lines = stack.gateway.proc.output.split("\n");
  t.is(lines.filter((l) => l.includes("internal error in call")).length, 0);
  const summaries = lines.filter((l) => l.includes("model errors returned to callers"));
  t.true(summaries.length >= 1);
  t.true(summaries.length < poisonResults.length || poisonResults.length === 1, `${summaries.length} summary lines for ${poisonResults.length} errors`);
});
