import test from "ava";
import { status as Status } from "@grpc/grpc-js";
import { LoopPressure, type LoopState } from "../../core/loop-pressure.js";
import { shedWhileBehind } from "../../core/servers/shed-while-behind.js";

/** A LoopPressure on a clock the test moves (one level at 40 ms unless told, a sample every 10 ms); `changes` are those of the 40 ms level. */
function onClock(thresholdsMs: number[] = [40]): { pressure: LoopPressure; changes: Array<[LoopState, number]>; all: Array<[number, LoopState, number]>; at(ms: number): void } {
  let now = 1000;
  const changes: Array<[LoopState, number]> = [];
  const all: Array<[number, LoopState, number]> = [];
  const pressure = new LoopPressure({
    thresholdsMs,
    sampleMs: 10,
    now: () => now,
    onChange: (level, s, late) => {
      all.push([level, s, late]);
      if (level === 40) changes.push([s, late]);
    },
  });
  return { pressure, changes, all, at: (ms) => (now = ms) };
}

test("a loop whose samples fire on time is calm", (t) => {
  const { pressure, changes, at } = onClock();
  for (let ms = 1010; ms <= 1100; ms += 10) {
    at(ms);
    pressure.sample();
  }
  t.is(pressure.stateOf(40), "calm");
  t.false(pressure.behindBy(40));
  t.deepEqual(changes, []);
});

test("a call in a turn that has kept the timer overdue by the threshold is behind before any sample fires", (t) => {
  const { pressure, changes, at } = onClock();
  // The first sample is due at 1010: 39 ms overdue is not yet behind, 40 is.
  at(1049);
  t.false(pressure.behindBy(40));
  at(1050);
  t.true(pressure.behindBy(40));
  t.is(pressure.stateOf(40), "calm", "no sample has fired late yet");
  t.deepEqual(changes, []);
});

test("one late sample is a stall, not load: the loop stays calm, and an on-time sample starts the count again", (t) => {
  const { pressure, changes, at } = onClock();
  at(1070); // due 1010: 60 ms late
  pressure.sample();
  t.is(pressure.stateOf(40), "calm");
  t.false(pressure.behindBy(40), "the backlog of one stall is served");
  at(1081); // due 1080: on time
  pressure.sample();
  at(1150); // due 1091: 59 ms late, but not in a row with the first
  pressure.sample();
  t.is(pressure.stateOf(40), "calm");
  t.deepEqual(changes, []);
});

test("two late samples in a row turn the state behind until one fires late by less than half the threshold", (t) => {
  const { pressure, changes, at } = onClock();
  at(1070); // due 1010: 60 ms late
  pressure.sample();
  at(1130); // due 1080: 50 ms late
  pressure.sample();
  t.is(pressure.stateOf(40), "behind");
  t.deepEqual(changes, [["behind", 50]]);
  // Due 1140; 25 ms late is under the threshold but not under half of it: still behind.
  at(1165);
  pressure.sample();
  t.true(pressure.behindBy(40));
  // Due 1175; 19 ms late: calm again.
  at(1194);
  pressure.sample();
  t.is(pressure.stateOf(40), "calm");
  t.false(pressure.behindBy(40));
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
  t.true(pressure.behindBy(40));
  pressure.stop();
  at(5000);
  t.is(pressure.stateOf(40), "calm");
  t.false(pressure.behindBy(40));
});

test("a threshold or sampling period that is not positive is refused", (t) => {
  t.throws(() => new LoopPressure({ thresholdsMs: [0] }), { instanceOf: RangeError });
  t.throws(() => new LoopPressure({ thresholdsMs: [Number.NaN] }), { instanceOf: RangeError });
  t.throws(() => new LoopPressure({ thresholdsMs: [10], sampleMs: 0 }), { instanceOf: RangeError });
  const { pressure } = onClock();
  t.throws(() => pressure.track([20, -1]), { instanceOf: RangeError });
  t.deepEqual(pressure.thresholdsMs, [40], "a refused list changes nothing");
});

test("the door lets calls in while calm and refuses them with RESOURCE_EXHAUSTED, GATEWAY_BEHIND and Retry-After while behind", (t) => {
  let behind = false;
  let refused = 0;
  const asked: Array<string | undefined> = [];
  const door = shedWhileBehind((subject) => {
    asked.push(subject);
    return behind;
  }, (subject) => {
    refused++;
    asked.push(`refused ${subject}`);
  });
  t.is(door("a"), null);
  behind = true;
  const err = door(undefined);
  t.truthy(err);
  t.is(err!.code, Status.RESOURCE_EXHAUSTED);
  t.is(err!.reason, "GATEWAY_BEHIND");
  t.is(err!.headers["retry-after"], "1");
  t.regex(err!.message, /retry in 1 s/);
  door("b");
  t.is(refused, 2);
  behind = false;
  t.is(door("c"), null);
  t.is(refused, 2);
  t.deepEqual(asked, ["a", undefined, "refused undefined", "b", "refused b", "c"], "the subject reaches the rule and the count");
});

test("each level has its own state from the same samples: load that puts a 20 ms level behind leaves a 100 ms one calm", (t) => {
  const { pressure, all, at } = onClock([20, 100]);
  at(1060); // due 1010: 50 ms late
  pressure.sample();
  at(1120); // due 1070: 50 ms late
  pressure.sample();
  t.is(pressure.stateOf(20), "behind");
  t.is(pressure.stateOf(100), "calm");
  t.true(pressure.behindBy(20));
  t.false(pressure.behindBy(100));
  // A turn that keeps the timer overdue by 100 ms puts the 100 ms level's calls behind at once.
  at(1230); // due 1130
  t.true(pressure.behindBy(100));
  pressure.sample(); // 100 ms late, but only one sample in a row for the 100 ms level
  t.is(pressure.stateOf(100), "calm");
  at(1345); // due 1240: 105 ms late
  pressure.sample();
  t.is(pressure.stateOf(100), "behind");
  t.deepEqual(all, [
    [20, "behind", 50],
    [100, "behind", 105],
  ]);
});

test("track keeps the state of a level it keeps, starts a new one calm, and drops the rest; a threshold not tracked has only the overdue rule", (t) => {
  const { pressure, at } = onClock([20, 40]);
  at(1060);
  pressure.sample();
  at(1120);
  pressure.sample(); // 50 ms late twice: both levels behind
  t.is(pressure.stateOf(40), "behind");
  pressure.track([40, 30]);
  t.deepEqual(pressure.thresholdsMs, [30, 40]);
  t.is(pressure.stateOf(40), "behind", "kept");
  t.is(pressure.stateOf(30), "calm", "new");
  t.is(pressure.stateOf(20), "calm", "dropped");
  at(1135); // due 1130: 5 ms overdue
  t.false(pressure.behindBy(30));
  t.false(pressure.behindBy(20), "not tracked: only as far overdue as it is");
  t.true(pressure.behindBy(40));
  at(1150); // 20 ms overdue
  t.true(pressure.behindBy(20));
});

test("stop leaves every level calm", (t) => {
  const { pressure, all, at } = onClock([20, 40]);
  at(1060);
  pressure.sample();
  at(1120);
  pressure.sample();
  pressure.stop();
  at(9000);
  t.false(pressure.behindBy(20));
  t.false(pressure.behindBy(40));
  t.deepEqual(all.slice(2).map(([level, s]) => [level, s]), [
    [20, "calm"],
    [40, "calm"],
  ]);
});
