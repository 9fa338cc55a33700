import test from "ava";
import { encodeInput, encodeJsonInput } from "../../core/input-codec.js";
import type { Input } from "../../gen/clipper/v1/input.js";

const input = (fields: Partial<Input>): Input => ({ doubles: [], floats: [], ints: [], bytes: Buffer.alloc(0), text: "", ...fields });

/** The wire bytes, written element by element with explicit little-endian writes. */
function expected(kind: "doubles" | "floats" | "integers", xs: readonly number[]): Buffer {
  const size = kind === "doubles" ? 8 : 4;
  const out = Buffer.alloc(xs.length * size);
  xs.forEach((x, i) => {
    if (kind === "doubles") out.writeDoubleLE(x, i * size);
    else if (kind === "floats") out.writeFloatLE(x, i * size);
    else out.writeInt32LE(x, i * size);
  });
  return out;
}

function bytesOf(result: ReturnType<typeof encodeInput>): Buffer {
  if (!result.ok) throw new Error(result.error);
  return result.bytes;
}

const DOUBLES = [0, -0, 1.5, -2.25, 0.1, Number.MAX_VALUE, Number.MIN_VALUE, 1e300, NaN, Infinity];
const FLOATS = [0, 1.5, -2.25, 0.1, 3.4028234663852886e38, 1e-40];
const INTS = [0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 123456789];

test("numbers are packed little-endian, element by element, on both edges", (t) => {
  t.deepEqual(bytesOf(encodeInput(input({ doubles: DOUBLES }), "doubles")), expected("doubles", DOUBLES));
  t.deepEqual(bytesOf(encodeInput(input({ floats: FLOATS }), "floats")), expected("floats", FLOATS));
  t.deepEqual(bytesOf(encodeInput(input({ ints: INTS }), "integers")), expected("integers", INTS));
  const finite = DOUBLES.filter(Number.isFinite);
  t.deepEqual(bytesOf(encodeJsonInput(finite, "doubles")), expected("doubles", finite));
  t.deepEqual(bytesOf(encodeJsonInput(FLOATS, "floats")), expected("floats", FLOATS));
  t.deepEqual(bytesOf(encodeJsonInput(INTS, "integers")), expected("integers", INTS));
});

test("each input gets bytes of its own, whatever was allocated before it", (t) => {
  const outs: Buffer[] = [];
  for (let i = 0; i < 200; i++) {
    // Odd-sized buffers in between move the shared pool's offset around.
    Buffer.allocUnsafe(i % 7);
    outs.push(bytesOf(encodeInput(input({ doubles: [i, i + 0.5] }), "doubles")));
    outs.push(bytesOf(encodeJsonInput([i], "floats")));
  }
  outs.forEach((b, j) => {
    const i = Math.floor(j / 2);
    t.deepEqual(b, j % 2 === 0 ? expected("doubles", [i, i + 0.5]) : expected("floats", [i]));
  });
  outs[0]!.fill(0xff);
  t.deepEqual(outs[2], expected("doubles", [1, 1.5]));
});

test("a large input is packed whole", (t) => {
  const xs = Array.from({ length: 5_000 }, (_, i) => i / 3);
  const b = bytesOf(encodeInput(input({ doubles: xs }), "doubles"));
  t.is(b.length, 40_000);
  t.deepEqual(b, expected("doubles", xs));
});
