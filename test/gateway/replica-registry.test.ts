/** The replica lifecycle and eviction, on an injected clock: no process, socket or Redis. */
import test from "ava";
import { pino } from "pino";
import { Liveness } from "../../gateway/liveness.js";
import type { RemovalReason, Replica, ReplicaFields, ReplicaLink, SentBatch } from "../../gateway/replica.js";
import type { ReplicaIdSource } from "../../gateway/replica-ids.js";
import { ReplicaRegistry } from "../../gateway/replica-registry.js";

function setup() {
  const registry = new ReplicaRegistry(pino({ level: "silent" }));
  const events: string[] = [];
  registry.on("added", (r) => events.push(`added ${r.replicaId}`));
  registry.on("draining", (r) => events.push(`draining ${r.replicaId}`));
  registry.on("removed", (r, reason) => events.push(`removed ${r.replicaId} ${reason}`));
  registry.on("missedBeats", (r, n) => events.push(`missed ${r.replicaId} ${n}`));
  registry.on("quarantined", (r, reason) => events.push(`quarantined ${r.replicaId} ${reason}`));
  const dismissed: string[] = [];
  const link: ReplicaLink = { sendBatch: async () => true, dismiss: (_r, reason) => dismissed.push(reason) };
  const fields = (id: number, silentWhileBusy = false, now = 0, version = "1"): ReplicaFields => ({
    identity: Buffer.from([id]), dialect: "native", modelName: "m", modelVersion: version, inputType: "doubles", slots: 1, maxBatchSize: Infinity,
    link, liveness: { heartbeatMs: 100, evictAfterMs: 300, silentWhileBusy }, now,
  });
  let nextId = 0;
  const add = (id: number, silentWhileBusy = false, now = 0): Replica => registry.add(fields(id, silentWhileBusy, now), nextId++);
  return { registry, events, dismissed, add, fields };
}

const busy = (r: Replica): void => {
  r.inFlight.set(1, { id: 1, tasks: [], sentAt: 0, startedAt: 0, span: null, wire: undefined, timeout: null } satisfies SentBatch);
};

test("joining draws ids per model version from the id source, connection ids across all, from 0", async (t) => {
  const { registry, fields } = setup();
  const a = (await registry.join(fields(1)))!;
  const b = (await registry.join(fields(2)))!;
  const c = (await registry.join(fields(3, false, 0, "2")))!;
  t.deepEqual([a.replicaId, a.connectionId, b.replicaId, b.connectionId, c.replicaId, c.connectionId], [0, 0, 1, 1, 0, 2]);
});

test("a peer is joining while its id is drawn: a second registration of it is refused, and none after clear()", async (t) => {
  let release!: (id: number) => void;
  const ids: ReplicaIdSource = { next: () => new Promise<number>((r) => (release = r)) };
  const registry = new ReplicaRegistry(pino({ level: "silent" }), ids);
  const link: ReplicaLink = { sendBatch: async () => true, dismiss: () => {} };
  const f: ReplicaFields = {
    identity: Buffer.from([7]), dialect: "native", modelName: "m", modelVersion: "1", inputType: "doubles", slots: 1, maxBatchSize: Infinity,
    link, liveness: { heartbeatMs: 100, evictAfterMs: 300, silentWhileBusy: false }, now: 0,
  };
  const first = registry.join(f);
  t.true(registry.joining("07"));
  t.is(await registry.join(f), null);
  release(41);
  t.is((await first)?.replicaId, 41);
  t.false(registry.joining("07"));
  t.is(await registry.join(f), null, "registered already");
  const other = registry.join({ ...f, identity: Buffer.from([8]) });
  registry.clear("disconnected");
  release(42);
  t.is(await other, null);
  t.is(registry.size, 0);
});

test("serving → draining → gone(drained): an idle replica leaves as soon as it drains", (t) => {
  const { registry, events, add } = setup();
  const r = add(1);
  t.is(r.phase.name, "serving");
  registry.drain(r);
  t.deepEqual(r.phase, { name: "gone", reason: "drained" });
  t.is(registry.size, 0);
  t.deepEqual(events, ["added 0", "draining 0", "removed 0 drained"]);
});

test("a busy replica drains until its last batch is answered, and takes nothing new meanwhile", (t) => {
  const { registry, add } = setup();
  const r = add(1);
  busy(r);
  registry.drain(r);
  t.is(r.phase.name, "draining");
  t.false(r.hasFreeSlot);
  registry.leaveIfDrained(r);
  t.is(r.phase.name, "draining", "still has a batch in flight");
  r.inFlight.clear();
  registry.leaveIfDrained(r);
  t.deepEqual(r.phase, { name: "gone", reason: "drained" });
});

test("gone is final: no transition leaves it, and a second removal is refused", (t) => {
  const { registry, events, add } = setup();
  const r = add(1);
  t.true(registry.remove(r, "disconnected"));
  t.false(registry.remove(r, "evicted"));
  registry.drain(r);
  t.false(r.startDraining());
  t.false(r.leave("evicted"));
  t.deepEqual(r.phase, { name: "gone", reason: "disconnected" });
  t.deepEqual(events, ["added 0", "removed 0 disconnected"]);
});

test("draining twice announces once", (t) => {
  const { registry, events, add } = setup();
  const r = add(1);
  busy(r);
  registry.drain(r);
  registry.drain(r);
  t.deepEqual(events, ["added 0", "draining 0"]);
});

test("dismiss tells the peer through its link, then removes it with the reason given", (t) => {
  const { registry, dismissed, add } = setup();
  const r = add(1);
  registry.dismiss(r, "model-removed", "model version deleted");
  t.deepEqual(dismissed, ["model version deleted"]);
  t.deepEqual(r.phase, { name: "gone", reason: "model-removed" as RemovalReason });
  registry.dismiss(r, "model-removed", "again");
  t.deepEqual(dismissed, ["model version deleted"], "a gone replica is not told twice");
});

test("a silent replica misses beats one interval after each was due, then is evicted past its limit", (t) => {
  const { registry, events, add } = setup();
  add(1);
  registry.sweep(150);
  t.deepEqual(events, ["added 0"], "half an interval late is within the grace");
  registry.sweep(200);
  t.deepEqual(events, ["added 0", "missed 0 1"]);
  registry.sweep(300);
  t.deepEqual(events, ["added 0", "missed 0 1", "missed 0 1"]);
  registry.sweep(301);
  t.deepEqual(events, ["added 0", "missed 0 1", "missed 0 1", "removed 0 evicted"]);
});

test("a replica that speaks starts its silence over", (t) => {
  const { registry, events, add } = setup();
  const r = add(1);
  registry.sweep(250);
  t.is(registry.seen(r.address, 250), r);
  registry.sweep(500);
  t.is(registry.size, 1);
  t.deepEqual(events, ["added 0", "missed 0 1", "missed 0 1"]);
  t.is(registry.seen("ffff", 500), undefined);
});

test("a peer silent while busy misses no beats while its batch runs, but is still evicted past the limit", (t) => {
  const l = new Liveness({ heartbeatMs: 100, evictAfterMs: 300, silentWhileBusy: true }, 0);
  t.deepEqual(l.check(250, true), { newlyMissed: 0, expired: false });
  t.deepEqual(l.check(250, false), { newlyMissed: 1, expired: false });
  t.deepEqual(l.check(301, true), { newlyMissed: 0, expired: true });
});

test("quarantine: a serving or draining replica takes nothing new, its peer is asked to drain, and it stays listed until it leaves", (t) => {
  const { registry, events, dismissed, add } = setup();
  const a = add(1);
  busy(a);
  const b = add(2);
  busy(b);
  registry.drain(b);
  t.true(registry.quarantine(a, "slow"));
  t.true(registry.quarantine(b, "slow too"));
  for (const r of [a, b]) {
    t.is(r.phase.name, "quarantined");
    t.true(r.quarantined);
    t.false(r.hasFreeSlot);
    t.false(r.serving);
  }
  t.false(registry.quarantine(a, "again"), "announced once");
  a.inFlight.clear();
  registry.leaveIfDrained(a);
  registry.drain(a);
  t.is(registry.size, 2, "idle, it is still listed: its peer may still run the stuck batch");
  t.deepEqual(dismissed, ["quarantined: slow", "quarantined: slow too"]);
  registry.remove(a, "evicted");
  t.deepEqual(a.phase, { name: "gone", reason: "evicted" });
  t.deepEqual(events, ["added 0", "added 1", "draining 1", "quarantined 0 slow", "quarantined 1 slow too", "removed 0 evicted"]);
});
