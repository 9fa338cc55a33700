import test from "ava";
import { decodeInput } from "../../worker/input-decoding.js";

test("numeric frames decode as little-endian elements", (t) => {
  const d = decodeInput("doubles", Buffer.from("000000000000f03f0000000000000040", "hex"));
  t.deepEqual(d, { ok: true, value: new Float64Array([1, 2]) });
  const i = decodeInput("integers", Buffer.from("01000000ffffffff", "hex"));
  t.deepEqual(i, { ok: true, value: new Int32Array([1, -1]) });
  const f = decodeInput("floats", Buffer.from("0000c03f", "hex"));
  t.deepEqual(f, { ok: true, value: new Float32Array([1.5]) });
});

test("a frame at an odd byte offset still decodes", (t) => {
  const backing = Buffer.alloc(17);
  Buffer.from(new Float64Array([3, 4]).buffer).copy(backing, 1);
  const d = decodeInput("doubles", backing.subarray(1));
  t.deepEqual(d, { ok: true, value: new Float64Array([3, 4]) });
});

test("an aligned frame is viewed in place, not copied", (t) => {
  const frame = Buffer.from(new Int32Array([5, 6]).buffer);
  const d = decodeInput("integers", frame);
  t.true(d.ok);
  if (!d.ok) return;
  t.true(d.value instanceof Int32Array);
  t.is((d.value as Int32Array).buffer, frame.buffer);
});

test("a length that is not a multiple of the element size is an error, not a throw", (t) => {
  for (const [type, length] of [["doubles", 12], ["floats", 6], ["integers", 1]] as const) {
    const d = decodeInput(type, Buffer.alloc(length));
    t.false(d.ok);
    if (!d.ok) t.regex(d.error, new RegExp(`${length} bytes`));
  }
});

test("strings must be UTF-8; bytes pass through untouched", (t) => {
  t.deepEqual(decodeInput("strings", Buffer.from("zoë")), { ok: true, value: "zoë" });
  t.false(decodeInput("strings", Buffer.from([0xff, 0xfe])).ok);
  const raw = Buffer.from([0xff, 0]);
  const b = decodeInput("bytes", raw);
  t.true(b.ok);
  if (b.ok) t.is(b.value, raw);
});
