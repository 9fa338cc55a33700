import test from "ava";
import { canTransition, checkTransition, IllegalTransitionError, SESSION_TRANSITIONS, type SessionPhase } from "../../worker/session-state.js";

const PHASES: readonly SessionPhase[] = ["registering", "serving", "reconnecting", "draining", "stopped"];

/** Every legal move, written out once more by hand so a change to the table has to change this test too. */
const LEGAL: ReadonlySet<string> = new Set([
  "registering -> serving",
  "registering -> reconnecting",
  "registering -> draining",
  "registering -> stopped",
  "serving -> serving",
  "serving -> registering",
  "serving -> reconnecting",
  "serving -> draining",
  "serving -> stopped",
  "reconnecting -> registering",
  "reconnecting -> draining",
  "reconnecting -> stopped",
  "draining -> stopped",
]);

test("the table names every phase, and only phases, as a source and as a target", (t) => {
  t.deepEqual(Object.keys(SESSION_TRANSITIONS).sort(), [...PHASES].sort());
  for (const targets of Object.values(SESSION_TRANSITIONS)) {
    for (const to of targets) t.true(PHASES.includes(to), to);
  }
});

for (const from of PHASES) {
  for (const to of PHASES) {
    const move = `${from} -> ${to}`;
    if (LEGAL.has(move)) {
      test(`${move} is allowed`, (t) => {
        t.true(canTransition(from, to));
        t.notThrows(() => checkTransition(from, to));
      });
    } else {
      test(`${move} is refused with an IllegalTransitionError naming both phases`, (t) => {
        t.false(canTransition(from, to));
        const err = t.throws(() => checkTransition(from, to), { instanceOf: IllegalTransitionError });
        t.is(err?.from, from);
        t.is(err?.to, to);
        t.is(err?.message, `illegal session state transition ${move}`);
      });
    }
  }
}

test("nothing leaves stopped, and a drain can only end", (t) => {
  t.deepEqual(SESSION_TRANSITIONS.stopped, []);
  t.deepEqual(SESSION_TRANSITIONS.draining, ["stopped"]);
});

test("every phase but stopped can reach stopped directly (close() works from anywhere)", (t) => {
  for (const from of PHASES.filter((p) => p !== "stopped")) t.true(canTransition(from, "stopped"), from);
});
