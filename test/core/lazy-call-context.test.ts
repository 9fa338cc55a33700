import { EventEmitter } from "node:events";
import test from "ava";
import { status as Status } from "@grpc/grpc-js";
import type { CallContext } from "../../core/call-context.js";
import { NO_DEADLINE } from "../../core/deadline.js";
import { ServingError } from "../../core/errors.js";
import { LazyMetadata, lazyCallContext, withDeadline, type CallSource, type MetadataReader } from "../../core/lazy-call-context.js";

/** A transport call: emits "gone-maybe"; `left` says whether the caller has really gone. */
class FakeCall extends EventEmitter {
  left = false;
  metadataBuilds = 0;
  leave(): void {
    this.left = true;
    this.emit("gone-maybe");
  }
}

const SOURCE: CallSource<FakeCall, FakeCall> = {
  carrier: (call) => call,
  lookup: (_call, key) => (key === "traceparent" ? "tp" : undefined),
  build: (call) => {
    call.metadataBuilds++;
    return new Map([["traceparent", "tp"]]);
  },
  event: "gone-maybe",
  gone: (call) => call.left,
  goneReason: () => new ServingError(Status.CANCELLED, "CANCELLED", "gone"),
};

test("one transport listener per call, however many readers, removed by dispose", (t) => {
  const call = new FakeCall();
  const { ctx, dispose } = lazyCallContext(SOURCE, call, "grpc", NO_DEADLINE, "peer-1");
  t.is(ctx.peer, "peer-1");
  t.is(ctx.transport, "grpc");
  t.is(ctx.deadline, NO_DEADLINE);
  ctx.onCancel(() => {});
  ctx.onCancel(() => {});
  void ctx.signal;
  t.is(call.listenerCount("gone-maybe"), 1);
  dispose();
  t.is(call.listenerCount("gone-maybe"), 0);
});

test("onCancel listeners and the signal all learn once that the caller went away", (t) => {
  const call = new FakeCall();
  const { ctx } = lazyCallContext(SOURCE, call, "http", NO_DEADLINE, "");
  let a = 0;
  let b = 0;
  let removed = 0;
  ctx.onCancel(() => a++);
  const stop = ctx.onCancel(() => removed++);
  ctx.onCancel(() => b++);
  stop();
  const signal = ctx.signal;
  t.false(signal.aborted);
  call.emit("gone-maybe"); // an event that does not mean the caller left
  t.false(signal.aborted);
  call.leave();
  call.leave();
  t.deepEqual([a, b, removed], [1, 1, 0]);
  t.true(signal.aborted);
  t.true(signal.reason instanceof ServingError);
  t.is((signal.reason as ServingError).code, Status.CANCELLED);
});

test("a caller already gone is reported at once, to onCancel and to a signal made later", (t) => {
  const call = new FakeCall();
  call.left = true;
  const { ctx } = lazyCallContext(SOURCE, call, "grpc", NO_DEADLINE, "");
  let called = 0;
  const stop = ctx.onCancel(() => called++);
  t.is(called, 1);
  stop();
  t.true(ctx.signal.aborted);
  t.is((ctx.signal.reason as ServingError).code, Status.CANCELLED);
  t.is(call.listenerCount("gone-maybe"), 0);
});

test("the signal aborts DEADLINE_EXCEEDED when the deadline passes, and onCancel is not told", async (t) => {
  const call = new FakeCall();
  const { ctx, dispose } = lazyCallContext(SOURCE, call, "grpc", Date.now() + 20, "");
  let cancelled = 0;
  ctx.onCancel(() => cancelled++);
  const reason = await new Promise<unknown>((resolve) => ctx.signal.addEventListener("abort", () => resolve(ctx.signal.reason), { once: true }));
  t.is((reason as ServingError).code, Status.DEADLINE_EXCEEDED);
  t.is(cancelled, 0);
  dispose();
});

test("after dispose the signal never aborts, and a late reader gets a signal that stays open", async (t) => {
  const call = new FakeCall();
  const first = lazyCallContext(SOURCE, call, "grpc", Date.now() + 10, "");
  const signal = first.ctx.signal;
  first.dispose();
  const late = lazyCallContext(SOURCE, call, "grpc", Date.now() + 10, "");
  late.dispose();
  const lateSignal = late.ctx.signal;
  call.leave();
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.false(signal.aborted);
  t.false(lateSignal.aborted);
});

test("metadata is read a key at a time, and built once when iterated", (t) => {
  const call = new FakeCall();
  const { ctx } = lazyCallContext(SOURCE, call, "grpc", NO_DEADLINE, "p");
  t.is(ctx.metadata.get("traceparent"), "tp");
  t.is(ctx.metadata, ctx.metadata);
  t.is(call.metadataBuilds, 0);
  t.deepEqual([...ctx.metadata], [["traceparent", "tp"]]);
  t.deepEqual([...ctx.metadata], [["traceparent", "tp"]]);
  t.is(call.metadataBuilds, 1);
});

test("a context stays readable after dispose: metadata, transport, deadline and peer", (t) => {
  const call = new FakeCall();
  const { ctx, dispose } = lazyCallContext(SOURCE, call, "http", 1234, "p");
  dispose();
  t.is(ctx.metadata.get("traceparent"), "tp");
  t.deepEqual([...ctx.metadata], [["traceparent", "tp"]]);
  t.deepEqual([ctx.transport, ctx.deadline, ctx.peer], ["http", 1234, "p"]);
  t.false(ctx.signal.aborted);
});

test("withDeadline narrows the deadline and keeps the call's signal, metadata and onCancel", (t) => {
  const call = new FakeCall();
  const { ctx } = lazyCallContext(SOURCE, call, "grpc", NO_DEADLINE, "p");
  const deadline = Date.now() + 60_000;
  const item = withDeadline(ctx, deadline);
  t.is(item.deadline, deadline);
  t.is(item.transport, "grpc");
  t.is(item.peer, "p");
  t.is(item.metadata.get("traceparent"), "tp");
  t.is(item.signal, ctx.signal);
  let told = 0;
  item.onCancel(() => told++);
  call.leave();
  t.is(told, 1);
  t.true(item.signal.aborted);
  // Any context's narrowed one asks that context's own onCancel.
  let asked = 0;
  const plain: CallContext = {
    transport: "http",
    deadline: NO_DEADLINE,
    signal: new AbortController().signal,
    metadata: new Map<string, string>(),
    peer: "",
    onCancel: () => {
      asked++;
      return () => {};
    },
  };
  withDeadline(plain, deadline).onCancel(() => {});
  t.is(asked, 1);
});

test("LazyMetadata answers lookups without building, and like the built map after", (t) => {
  let builds = 0;
  const full = new Map([["a", "1"], ["b", "2"]]);
  const reader: MetadataReader<Map<string, string>> = {
    lookup: (map, key) => map.get(key),
    build: (map) => {
      builds++;
      return map;
    },
  };
  const m = new LazyMetadata(reader, full);
  t.is(m.get("a"), "1");
  t.true(m.has("b"));
  t.false(m.has("c"));
  t.is(builds, 0);
  t.is(m.size, 2);
  t.deepEqual([...m], [["a", "1"], ["b", "2"]]);
  t.deepEqual([...m.keys()], ["a", "b"]);
  t.deepEqual([...m.values()], ["1", "2"]);
  t.deepEqual([...m.entries()], [["a", "1"], ["b", "2"]]);
  const seen: string[] = [];
  m.forEach((value, key, map) => {
    seen.push(`${key}=${value}`);
    t.is(map, m);
  });
  t.deepEqual(seen, ["a=1", "b=2"]);
  t.is(m.get("a"), "1");
  t.is(builds, 1);
});
