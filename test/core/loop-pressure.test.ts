import test from "ava";
import { status as Status } from "@grpc/grpc-js";
import { LoopPressure, type LoopState } from "../../core/loop-pressure.js";
import { shedWhileBehind } from "../../core/servers/shed-while-behind.js";

/** A LoopPressure on a clock the test moves (threshold 40 ms, a sample every 10 ms). */
function onClock(): { pressure: LoopPressure; changes: Array<[LoopState, number]>; at(ms: number): void } {
  let now = 1000;
  const changes: Array<[LoopState, number]> = [];
  const pressure = new LoopPressure({ thresholdMs: 40, sampleMs: 10, now: () => now, onChange: (s, late) => changes.push([s, late]) });
  return { pressure, changes, at: (ms) => (now = ms) };
}

test("a loop whose samples fire on time is calm", (t) => {
  const { pressure, changes, at } = onClock();
  for (let ms = 1010; ms <= 1100; ms += 10) {
    at(ms);
    pressure.sample();
  }
  t.is(pressure.state, "calm");
  t.false(pressure.behind);
  t.deepEqual(changes, []);
});

test("a call in a turn that has kept the timer overdue by the threshold is behind before any sample fires", (t) => {
  const { pressure, changes, at } = onClock();
  // The first sample is due at 1010: 39 ms overdue is not yet behind, 40 is.
  at(1049);
  t.false(pressure.behind);
  at(1050);
  t.true(pressure.behind);
  t.is(pressure.state, "calm", "no sample has fired late yet");
  t.deepEqual(changes, []);
});

test("one late sample is a stall, not load: the loop stays calm, and an on-time sample starts the count again", (t) => {
  const { pressure, changes, at } = onClock();
  at(1070); // due 1010: 60 ms late
  pressure.sample();
  t.is(pressure.state, "calm");
  t.false(pressure.behind, "the backlog of one stall is served");
  at(1081); // due 1080: on time
  pressure.sample();
  at(1150); // due 1091: 59 ms late, but not in a row with the first
  pressure.sample();
  t.is(pressure.state, "calm");
  t.deepEqual(changes, []);
});

test("two late samples in a row turn the state behind until one fires late by less than half the threshold", (t) => {
  const { pressure, changes, at } = onClock();
  at(1070); // due 1010: 60 ms late
  pressure.sample();
  at(1130); // due 1080: 50 ms late
  pressure.sample();
  t.is(pressure.state, "behind");
  t.deepEqual(changes, [["behind", 50]]);
  // Due 1140; 25 ms late is under the threshold but not under half of it: still behind.
  at(1165);
  pressure.sample();
  t.true(pressure.behind);
  // Due 1175; 19 ms late: calm again.
  at(1194);
  pressure.sample();
  t.is(pressure.state, "calm");
  t.false(pressure.behind);
  t.deepEqual(changes, [
    ["behind", 50],
    ["calm", 19],
  ]);
});

test("stop leaves the loop calm, whatever the clock says", (t) => {
  const { pressure, at } = onClock();
  at(1200);
  pressure.sample();
  at(1300);
  pressure.sample();
  t.true(pressure.behind);
  pressure.stop();
  at(5000);
  t.is(pressure.state, "calm");
  t.false(pressure.behind);
});

test("a threshold or sampling period that is not positive is refused", (t) => {
  t.throws(() => new LoopPressure({ thresholdMs: 0 }), { instanceOf: RangeError });
  t.throws(() => new LoopPressure({ thresholdMs: Number.NaN }), { instanceOf: RangeError });
  t.throws(() => new LoopPressure({ thresholdMs: 10, sampleMs: 0 }), { instanceOf: RangeError });
});

test("the door lets calls in while calm and refuses them with RESOURCE_EXHAUSTED, GATEWAY_BEHIND and Retry-After while behind", (t) => {
  let behind = false;
  let refused = 0;
  const door = shedWhileBehind({ get behind() { return behind; } }, () => refused++);
  t.is(door(), null);
  behind = true;
  const err = door();
  t.truthy(err);
  t.is(err!.code, Status.RESOURCE_EXHAUSTED);
  t.is(err!.reason, "GATEWAY_BEHIND");
  t.is(err!.headers["retry-after"], "1");
  t.regex(err!.message, /retry in 1 s/);
  door();
  t.is(refused, 2);
  behind = false;
  t.is(door(), null);
  t.is(refused, 2);
});

test("a changed threshold applies from the next check, and a threshold that is not positive is refused", (t) => {
  const { pressure, at } = onClock();
  at(1040); // due 1010: 30 ms overdue, under 40
  t.false(pressure.behind);
  pressure.thresholdMs = 25;
  t.true(pressure.behind);
  t.is(pressure.thresholdMs, 25);
  t.throws(() => (pressure.thresholdMs = 0), { instanceOf: RangeError });
  t.is(pressure.thresholdMs, 25);
});
