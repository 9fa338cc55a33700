import test from "ava";
import { createHash } from "node:crypto";
import { cacheKey, ENTRY_OVERHEAD_BYTES, EXACT_KEY_MAX_BYTES, InFlight, KeySpace, PredictionCache } from "../../gateway/cache.js";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
/** Charged size of an entry with a 64-char hex key and an ASCII value. */
const charge = (value: string): number => 64 + value.length + ENTRY_OVERHEAD_BYTES;
/** Distinct 64-char keys, the size of hashed ones. */
const k = (name: string): string => createHash("sha256").update(name).digest("hex");
/** An input one byte too large for the exact key form. */
const large = (fill: number): Uint8Array => new Uint8Array(EXACT_KEY_MAX_BYTES + 1).fill(fill);

// cacheKey

test("a small input's key is exact: its own bytes after the length-prefixed model and version", (t) => {
  const key = cacheKey("sum-model", "1", bytes("1,2,3"));
  t.is(key, "\u00009:sum-model1:11,2,3");
  t.is(cacheKey("sum-model", "1", Buffer.from("1,2,3")), key); // Buffer or Uint8Array alike
  // Every byte value survives, one character per byte.
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const exact = cacheKey("m", "1", all);
  t.is(exact.length, "\u00001:m1:1".length + 256);
  t.is(exact, "\u00001:m1:1" + String.fromCharCode(...all));
  t.true(cacheKey("m", "1", new Uint8Array(EXACT_KEY_MAX_BYTES)).startsWith("\u0000"));
});

test("a large input's key is a stable SHA-256 of model, version and input bytes", (t) => {
  const input = large(7);
  const key = cacheKey("sum-model", "1", input);
  t.regex(key, /^[0-9a-f]{64}$/);
  t.is(cacheKey("sum-model", "1", Buffer.from(input)), key);
  // The documented encoding: each part preceded by its 8-byte big-endian length.
  const len = (n: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    return b;
  };
  const expected = createHash("sha256")
    .update(Buffer.concat([len(9), Buffer.from("sum-model"), len(1), Buffer.from("1"), len(input.length), input]))
    .digest("hex");
  t.is(key, expected);
});

test("cacheKey differs on any change and never collides across different splits", (t) => {
  const keys = [
    cacheKey("ab", "c", bytes("d")),
    cacheKey("a", "bc", bytes("d")),
    cacheKey("a", "b", bytes("cd")),
    cacheKey("abc", "", bytes("d")),
    cacheKey("", "abc", bytes("d")),
    cacheKey("ab", "cd", new Uint8Array(0)),
    cacheKey("ab", "c", bytes("e")),
    cacheKey("ab", "c", bytes("d\0")),
    cacheKey("m", "2", bytes("d")),
    // Digits and ':' in names cannot fake a length prefix.
    cacheKey("1:a", "b", bytes("c")),
    cacheKey("1", "a1:b", bytes("c")),
    cacheKey("a1:", "b", bytes("c")),
    cacheKey("a", "1:bc", new Uint8Array(0)),
    cacheKey("a", "", bytes("1:bc")),
    cacheKey("a", "1", bytes("1:bc")),
    // Multi-byte names: lengths count the same units the key is made of.
    cacheKey("é", "1", bytes("x")),
    cacheKey("\u00c3\u00a9", "1", bytes("x")),
    // The same split with a large input, and large inputs that differ.
    cacheKey("ab", "c", large(1)),
    cacheKey("a", "bc", large(1)),
    cacheKey("ab", "c", large(2)),
  ];
  t.is(new Set(keys).size, keys.length);
  // A view into a larger buffer keys only its own bytes, in both forms.
  const small = bytes("xxhelloxx");
  t.is(cacheKey("m", "1", small.subarray(2, 7)), cacheKey("m", "1", bytes("hello")));
  const big = new Uint8Array(EXACT_KEY_MAX_BYTES + 10).fill(3);
  t.is(cacheKey("m", "1", big.subarray(4, 4 + EXACT_KEY_MAX_BYTES + 1)), cacheKey("m", "1", large(3)));
});

test("the two key forms never meet: no exact key is 64 hex characters", (t) => {
  // An input whose latin1 text is a hex digest is still keyed with the prefix.
  const hexInput = bytes(cacheKey("m", "1", large(9)));
  const exact = cacheKey("m", "1", hexInput);
  t.not(exact, cacheKey("m", "1", large(9)));
  t.true(exact.startsWith("\u0000"));
  t.notRegex(exact, /^[0-9a-f]{64}$/);
});

test("a KeySpace gives the keys cacheKey gives, for any number of inputs", (t) => {
  const space = new KeySpace("model-x", "v2");
  for (const input of [bytes(""), bytes("a"), bytes("1,2,3"), large(0), large(255)]) {
    t.is(space.key(input), cacheKey("model-x", "v2", input));
  }
});

// PredictionCache

test("get misses, then hits after put; put replaces; stats count both", (t) => {
  const c = new PredictionCache(10_000);
  t.is(c.get(k("a")), undefined);
  c.put(k("a"), "out-a");
  t.is(c.get(k("a")), "out-a");
  t.is(c.get(k("a")), "out-a");
  c.put(k("a"), "out-a2");
  t.is(c.get(k("a")), "out-a2");
  t.is(c.size, 1);
  t.is(c.bytes, charge("out-a2"));
  t.deepEqual(c.stats, { hits: 3, misses: 1, evictions: 0 });
});

test("bytes count the key, the UTF-8 value and the per-entry overhead", (t) => {
  const c = new PredictionCache(10_000);
  c.put("key", "é€"); // 2 + 3 bytes in UTF-8
  t.is(c.bytes, 3 + 5 + ENTRY_OVERHEAD_BYTES);
  t.is(c.maxBytes, 10_000);
});

test("CLOCK gives a used entry a second chance where FIFO would evict it", (t) => {
  const value = "v".repeat(100);
  const c = new PredictionCache(3 * charge(value)); // room for exactly three
  c.put(k("A"), value);
  c.put(k("B"), value);
  c.put(k("C"), value);
  t.is(c.get(k("A")), value); // A is the oldest, but used
  c.put(k("D"), value);
  // FIFO would have evicted A; CLOCK clears A's bit and evicts B.
  t.is(c.get(k("A")), value);
  t.is(c.get(k("B")), undefined);
  t.is(c.get(k("C")), value);
  t.is(c.get(k("D")), value);
  t.is(c.stats.evictions, 1);
});

test("the clock hand moves on: a second chance is spent once, new entries are swept last", (t) => {
  const value = "v".repeat(100);
  const c = new PredictionCache(3 * charge(value));
  // Reading marks entries used, so only look at the end.
  const present = (): string[] => ["A", "B", "C", "D", "E", "F"].filter((x) => c.get(k(x)) !== undefined);
  c.put(k("A"), value);
  c.put(k("B"), value);
  c.put(k("C"), value);
  c.get(k("A"));
  c.put(k("D"), value); // A: bit cleared, B evicted; hand now at C
  c.put(k("E"), value); // C unused: evicted (not A, not the newer D)
  t.is(c.size, 3);
  c.put(k("F"), value); // hand at A, whose chance is spent: evicted
  t.deepEqual(present(), ["D", "E", "F"]);
  t.is(c.stats.evictions, 3);
});

test("CLOCK keeps a hot entry indefinitely under a stream of one-off entries", (t) => {
  const value = "v".repeat(50);
  const c = new PredictionCache(8 * charge(value));
  c.put(k("hot"), value);
  for (let i = 0; i < 500; i++) {
    t.is(c.get(k("hot")), value, `lost the hot entry at ${i}`);
    c.put(k(`cold${i}`), value);
  }
  t.is(c.size, 8);
});

test("the byte bound is never exceeded, with values of varied sizes", (t) => {
  const max = 5_000;
  const c = new PredictionCache(max);
  let seed = 1;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 2000; i++) {
    const key = k(`x${Math.floor(rnd() * 300)}`);
    if (rnd() < 0.5) c.get(key);
    else c.put(key, "y".repeat(Math.floor(rnd() * 1500)));
    t.true(c.bytes <= max, `bytes ${c.bytes} > ${max} at step ${i}`);
  }
  t.true(c.stats.evictions > 0);
  t.true(c.stats.hits > 0);
});

test("a value larger than the whole cache is not stored, and evicts nothing", (t) => {
  const c = new PredictionCache(1000);
  c.put(k("small"), "s");
  c.put(k("huge"), "h".repeat(1000));
  t.is(c.get(k("huge")), undefined);
  t.is(c.get(k("small")), "s");
  t.is(c.stats.evictions, 0);
  // Replacing a stored value by an oversize one drops the stale value.
  c.put(k("small"), "h".repeat(1000));
  t.is(c.get(k("small")), undefined);
  t.is(c.bytes, 0);
  t.is(c.size, 0);
});

test("maxBytes 0 disables the cache", (t) => {
  const c = new PredictionCache(0);
  c.put(k("a"), "x");
  c.put(k("b"), "");
  t.is(c.get(k("a")), undefined);
  t.is(c.get(k("b")), undefined);
  t.is(c.size, 0);
  t.is(c.bytes, 0);
  t.deepEqual(c.stats, { hits: 0, misses: 2, evictions: 0 });
});

test("delete and clear free their bytes", (t) => {
  const c = new PredictionCache(10_000);
  c.put(k("a"), "1");
  c.put(k("b"), "2");
  c.put(k("c"), "3");
  t.true(c.delete(k("b")));
  t.false(c.delete(k("b")));
  t.is(c.size, 2);
  t.is(c.bytes, 2 * charge("1"));
  t.is(c.get(k("a")), "1");
  c.clear();
  t.is(c.size, 0);
  t.is(c.bytes, 0);
  c.put(k("d"), "4"); // usable after clear
  t.is(c.get(k("d")), "4");
});

test("rejects a negative or infinite bound", (t) => {
  t.throws(() => new PredictionCache(-1), { instanceOf: RangeError });
  t.throws(() => new PredictionCache(Infinity), { instanceOf: RangeError });
  t.throws(() => new PredictionCache(Number.NaN), { instanceOf: RangeError });
});

// InFlight

test("the first caller leads; followers get the leader's value", async (t) => {
  const f = new InFlight<string>();
  const lead = f.join("k");
  const f1 = f.join("k");
  const f2 = f.join("k");
  if (lead.kind !== "leader" || f1.kind !== "follower" || f2.kind !== "follower") return t.fail("wrong roles");
  t.is(f1.promise, f2.promise);
  t.is(f.size, 1);
  t.is(f.join("other").kind, "leader");
  t.is(f.size, 2);
  lead.settle({ ok: true, value: "answer" });
  t.is(f.size, 1);
  t.deepEqual(await Promise.all([f1.promise, f2.promise]), ["answer", "answer"]);
});

test("followers are rejected with the leader's error", async (t) => {
  const f = new InFlight<string>();
  const lead = f.join("k");
  const follower = f.join("k");
  if (lead.kind !== "leader" || follower.kind !== "follower") return t.fail("wrong roles");
  const boom = new Error("model failed");
  lead.settle({ ok: false, error: boom });
  const err = await t.throwsAsync(follower.promise);
  t.is(err, boom);
  t.is(f.size, 0);
});

test("after settle the next caller leads again; a second settle is ignored", async (t) => {
  const f = new InFlight<number>();
  const lead = f.join("k");
  if (lead.kind !== "leader") return t.fail();
  lead.settle({ ok: true, value: 1 });
  const again = f.join("k");
  t.is(again.kind, "leader");
  const follower = f.join("k");
  lead.settle({ ok: false, error: new Error("late duplicate") }); // must not touch the new round
  t.is(f.size, 1);
  if (again.kind !== "leader" || follower.kind !== "follower") return t.fail();
  again.settle({ ok: true, value: 2 });
  t.is(await follower.promise, 2);
});

test("a rejected follower nobody awaits causes no unhandled rejection", async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    const f = new InFlight<string>();
    const lead = f.join("k");
    f.join("k"); // follower that gave up (its own deadline passed)
    if (lead.kind !== "leader") return t.fail();
    lead.settle({ ok: false, error: new Error("nobody listens") });
    // Let the microtask queue and the unhandled-rejection check run.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    t.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

test("a leader with no followers settles without creating promises", (t) => {
  const f = new InFlight<string>();
  const lead = f.join("k");
  if (lead.kind !== "leader") return t.fail();
  lead.settle({ ok: false, error: new Error("no one waits") });
  t.is(f.size, 0);
});
