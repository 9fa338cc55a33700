import { status as Status } from "@grpc/grpc-js";
import test from "ava";
import { ServingError } from "../../core/errors.js";

const frames = (err: Error): number => (err.stack ?? "").split("\n").filter((line) => line.trimStart().startsWith("at ")).length;

test("an error the caller or the load causes carries no stack trace, and the limit is restored", (t) => {
  const limit = Error.stackTraceLimit;
  for (const code of [Status.RESOURCE_EXHAUSTED, Status.DEADLINE_EXCEEDED, Status.INVALID_ARGUMENT, Status.NOT_FOUND, Status.UNAVAILABLE]) {
    const err = new ServingError(code, "QUEUE_FULL", "the queue is full");
    t.is(frames(err), 0, `code ${code}`);
    t.is(err.message, "the queue is full");
    t.is(err.code, code);
  }
  t.is(Error.stackTraceLimit, limit);
  t.true(frames(new Error("plain")) > 0);
});

test("a server fault keeps its stack trace, and a wrapped error keeps its own in cause", (t) => {
  t.true(frames(new ServingError(Status.INTERNAL, "INTERNAL", "broken invariant")) > 0);
  const original = new TypeError("x is undefined");
  const wrapped = ServingError.from(original);
  t.is(wrapped.code, Status.INTERNAL);
  t.is(wrapped.cause, original);
  t.true(frames(wrapped) > 0);
  t.true(frames(original) > 0);
});
