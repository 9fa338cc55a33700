import test from "ava";
import { DeadlineQueue, type QueuedTask } from "../../gateway/queue.js";

interface Task extends QueuedTask {
  readonly id: string;
}

const task = (id: string, deadline: number): Task => ({ id, deadline, settled: false });
const ids = (tasks: readonly Task[]): string[] => tasks.map((t) => t.id);
const never = (): void => {
  throw new Error("nothing should expire");
};

test("take returns tasks earliest deadline first, regardless of push order", (t) => {
  const q = new DeadlineQueue<Task>(100);
  for (const [id, d] of [["e", 500], ["a", 100], ["d", 400], ["b", 200], ["c", 300]] as const) t.true(q.push(task(id, d)));
  t.is(q.size, 5);
  t.is(q.earliestDeadline(), 100);
  t.deepEqual(ids(q.take(2, 0, never)), ["a", "b"]);
  t.is(q.size, 3);
  t.is(q.earliestDeadline(), 300);
  t.deepEqual(ids(q.take(10, 0, never)), ["c", "d", "e"]);
  t.is(q.size, 0);
  t.is(q.earliestDeadline(), Infinity);
});

test("equal deadlines come out in insertion order (FIFO)", (t) => {
  const q = new DeadlineQueue<Task>(1000);
  const pushed: string[] = [];
  // Interleave two deadlines so heap reshuffles would expose any instability.
  for (let i = 0; i < 200; i++) {
    const id = `t${i}`;
    q.push(task(id, i % 2 === 0 ? 50 : 60));
    pushed.push(id);
  }
  const out = ids(q.take(1000, 0, never));
  t.deepEqual(out, [...pushed.filter((_, i) => i % 2 === 0), ...pushed.filter((_, i) => i % 2 === 1)]);
});

test("a large random workload pops in (deadline, insertion) order", (t) => {
  const q = new DeadlineQueue<Task>(Infinity);
  let seed = 12345;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648);
  const all: { id: string; deadline: number; seq: number }[] = [];
  const popped: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const d = rnd() % 50; // many ties
    q.push(task(`t${i}`, d));
    all.push({ id: `t${i}`, deadline: d, seq: i });
    if (i % 7 === 0) popped.push(...ids(q.take(1, -1, never)));
  }
  popped.push(...ids(q.take(Infinity, -1, never)));
  // Re-derive the expected order by simulating the same interleaving with a sort.
  const pending: typeof all = [];
  const expected: string[] = [];
  for (const x of all) {
    pending.push(x);
    if (x.seq % 7 === 0) {
      pending.sort((a, b) => a.deadline - b.deadline || a.seq - b.seq);
      expected.push(pending.shift()!.id);
    }
  }
  pending.sort((a, b) => a.deadline - b.deadline || a.seq - b.seq);
  expected.push(...pending.map((x) => x.id));
  t.deepEqual(popped, expected);
});

test("push refuses when full and the queue never grows past capacity", (t) => {
  const q = new DeadlineQueue<Task>(3);
  t.is(q.capacity, 3);
  t.true(q.push(task("a", 10)));
  t.true(q.push(task("b", 20)));
  t.true(q.push(task("c", 30)));
  t.false(q.push(task("d", 5)));
  t.is(q.size, 3);
  t.deepEqual(ids(q.take(10, 0, never)), ["a", "b", "c"]);
  // Popping frees room again.
  t.true(q.push(task("e", 40)));
  t.is(q.size, 1);
});

test("a full queue purges settled tasks before refusing", (t) => {
  const q = new DeadlineQueue<Task>(3);
  const a = task("a", 10);
  const b = task("b", 20);
  q.push(a);
  q.push(b);
  q.push(task("c", 30));
  a.settled = true; // answered with the default output, abandoned in the queue
  b.settled = true;
  t.true(q.push(task("d", 40)));
  t.true(q.push(task("e", 50)));
  t.false(q.push(task("f", 60)));
  t.is(q.size, 3);
  t.deepEqual(ids(q.take(10, 0, never)), ["c", "d", "e"]);
});

test("a queue full of settled tasks never refuses forever", (t) => {
  const q = new DeadlineQueue<Task>(50);
  for (let round = 0; round < 5; round++) {
    const batch: Task[] = [];
    for (let i = 0; i < 50; i++) {
      const x = task(`${round}-${i}`, 1000 - i);
      t.true(q.push(x), `round ${round} push ${i}`);
      batch.push(x);
    }
    for (const x of batch) x.settled = true;
  }
  t.is(q.purgeSettled(), 50);
  t.is(q.size, 0);
});

test("purging keeps the heap order intact", (t) => {
  const q = new DeadlineQueue<Task>(10);
  const tasks = [50, 10, 40, 20, 30, 60, 5, 70, 15, 25].map((d) => task(`d${d}`, d));
  for (const x of tasks) q.push(x);
  for (const x of tasks) if (x.deadline % 20 === 0) x.settled = true; // 40, 20, 60
  t.true(q.push(task("d1", 1)));
  t.deepEqual(ids(q.take(100, 0, never)), ["d1", "d5", "d10", "d15", "d25", "d30", "d50", "d70"]);
});

test("take drops settled tasks silently and does not count them", (t) => {
  const q = new DeadlineQueue<Task>(10);
  const a = task("a", 10);
  q.push(a);
  q.push(task("b", 20));
  q.push(task("c", 30));
  a.settled = true;
  t.is(q.earliestDeadline(), 20); // settled head skipped
  t.deepEqual(ids(q.take(2, 0, never)), ["b", "c"]);
  t.is(q.size, 0);
});

test("expired tasks go to onExpired, not to the batch, even past max", (t) => {
  const q = new DeadlineQueue<Task>(10);
  for (const [id, d] of [["late1", 90], ["late2", 100], ["ok1", 101], ["ok2", 150], ["ok3", 200]] as const) q.push(task(id, d));
  const expired: string[] = [];
  const got = q.take(1, 100, (x) => expired.push(x.id)); // deadline <= now counts as expired
  t.deepEqual(ids(got), ["ok1"]);
  t.deepEqual(expired, ["late1", "late2"]);
  t.is(q.size, 2);
  // max 0 still expires what is due, and returns nothing.
  t.deepEqual(q.take(0, 160, (x) => expired.push(x.id)), []);
  t.deepEqual(expired, ["late1", "late2", "ok2"]);
  t.deepEqual(ids(q.take(5, 160, never)), ["ok3"]);
});

test("settled expired tasks are dropped without calling onExpired", (t) => {
  const q = new DeadlineQueue<Task>(10);
  const a = task("a", 10);
  q.push(a);
  q.push(task("b", 20));
  a.settled = true;
  const expired: string[] = [];
  t.deepEqual(q.take(5, 1000, (x) => expired.push(x.id)), []);
  t.deepEqual(expired, ["b"]);
});

test("onExpired may push back into the queue", (t) => {
  const q = new DeadlineQueue<Task>(10);
  q.push(task("old", 5));
  q.push(task("x", 50));
  const got = q.take(5, 10, () => q.push(task("retry", 20)));
  t.deepEqual(ids(got), ["retry", "x"]);
});

test("NaN or negative max takes nothing", (t) => {
  const q = new DeadlineQueue<Task>(10);
  q.push(task("a", 10));
  t.deepEqual(q.take(Number.NaN, 0, never), []);
  t.deepEqual(q.take(-3, 0, never), []);
  t.is(q.size, 1);
});

test("drain removes everything and returns only live tasks in deadline order", (t) => {
  const q = new DeadlineQueue<Task>(10);
  const b = task("b", 20);
  for (const x of [task("c", 30), b, task("a", 10), task("d", 30)]) q.push(x);
  b.settled = true;
  t.deepEqual(ids(q.drain()), ["a", "c", "d"]);
  t.is(q.size, 0);
  t.is(q.earliestDeadline(), Infinity);
  t.deepEqual(q.drain(), []);
  t.true(q.push(task("e", 1)));
});

test("capacity 0 refuses everything; invalid capacities and NaN deadlines throw", (t) => {
  const q = new DeadlineQueue<Task>(0);
  t.false(q.push(task("a", 1)));
  t.is(q.size, 0);
  t.throws(() => new DeadlineQueue<Task>(-1), { instanceOf: RangeError });
  t.throws(() => new DeadlineQueue<Task>(1.5), { instanceOf: RangeError });
  t.throws(() => new DeadlineQueue<Task>(Number.NaN), { instanceOf: RangeError });
  t.throws(() => new DeadlineQueue<Task>(5).push(task("n", Number.NaN)), { instanceOf: RangeError });
});

test("tasks without a deadline (Infinity) come last and never expire", (t) => {
  const q = new DeadlineQueue<Task>(10);
  q.push(task("none", Infinity));
  q.push(task("soon", 10));
  t.deepEqual(ids(q.take(5, 1e15, () => {})), ["none"]);
});
