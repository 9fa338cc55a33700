import test from "ava";
import { BatchSlots } from "../../worker/batch-slots.js";

/** Jobs that finish when the test says so. */
function manualJobs() {
  const finish = new Map<string, () => void>();
  const started: string[] = [];
  const run = (job: string): Promise<void> =>
    new Promise((resolve) => {
      started.push(job);
      finish.set(job, resolve);
    });
  const done = async (job: string): Promise<void> => {
    finish.get(job)!();
    // Let the slot's bookkeeping (a promise continuation) run.
    await new Promise((r) => setImmediate(r));
  };
  return { run, started, done };
}

test("runs at most `limit` jobs, in arrival order, and refuses beyond the waiting bound", async (t) => {
  const jobs = manualJobs();
  const slots = new BatchSlots(2, 1, jobs.run);
  t.true(slots.offer("a"));
  t.true(slots.offer("b"));
  t.true(slots.offer("c"));
  t.false(slots.offer("d"));
  t.deepEqual(jobs.started, ["a", "b"]);
  t.is(slots.running, 2);
  t.is(slots.queued, 1);
  await jobs.done("b");
  t.deepEqual(jobs.started, ["a", "b", "c"]);
});

test("idle() resolves once everything running and waiting is done", async (t) => {
  const jobs = manualJobs();
  const slots = new BatchSlots(1, 10, jobs.run);
  slots.offer("a");
  slots.offer("b");
  let idle = false;
  const waiting = slots.idle().then(() => (idle = true));
  await jobs.done("a");
  t.false(idle);
  await jobs.done("b");
  await waiting;
  t.true(idle);
  await slots.idle();
});

test("clearWaiting returns the jobs not started; release ends idle() waits", async (t) => {
  const jobs = manualJobs();
  const slots = new BatchSlots(1, 10, jobs.run);
  slots.offer("a");
  slots.offer("b");
  t.deepEqual(slots.clearWaiting(), ["b"]);
  const waiting = slots.idle();
  slots.release();
  await waiting;
  t.is(slots.running, 1);
});
