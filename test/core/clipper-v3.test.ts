import test from "ava";
import { decodeContainerMessage, encodeHeartbeatReply, encodePredictRequest } from "../../core/wire/clipper-v3.js";

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ""), "hex");
const frames = (f: Buffer[]): string[] => f.map((b) => b.toString("hex"));

// The transcript of Clipper's own no-op container (clipper.md §4.9).
test("heartbeat replies match the recorded frames", (t) => {
  t.deepEqual(frames(encodeHeartbeatReply(false)), ["", "03000000", "02000000", "01000000"]);
  t.deepEqual(frames(encodeHeartbeatReply(true)), ["", "03000000", "02000000", "00000000"]);
});

test("a predict request matches the recorded frames byte for byte", (t) => {
  const f64 = (xs: number[]): Buffer => Buffer.from(new Float64Array(xs).buffer);
  const out = encodePredictRequest(0, "doubles", [f64([1, 2, 3]), f64([4, 5, 6])]);
  t.deepEqual(frames(out), [
    "",
    "03000000",
    "01000000",
    "00000000",
    "00000000",
    "2000000000000000",
    "0300000000000000020000000000000018000000000000001800000000000000",
    "000000000000f03f00000000000000400000000000000840",
    "000000000000104000000000000014400000000000001840",
  ]);
});

test("decodes the recorded heartbeat, registration and response", (t) => {
  t.deepEqual(decodeContainerMessage([Buffer.alloc(0), hex("02000000")]), { ok: true, value: { kind: "heartbeat" } });
  t.deepEqual(decodeContainerMessage([Buffer.alloc(0), hex("00000000"), Buffer.from("noop"), Buffer.from("1"), Buffer.from("3"), hex("03000000")]), {
    ok: true,
    value: { kind: "register", modelName: "noop", modelVersion: "1", inputType: "doubles", rpcVersion: 3 },
  });
  const r = decodeContainerMessage([
    Buffer.alloc(0),
    hex("01000000"),
    hex("00000000"),
    hex("1800000000000000"),
    hex("0200000000000000 0c00000000000000 0c00000000000000"),
    Buffer.from("fixed-answer"),
    Buffer.from("fixed-answer"),
  ]);
  t.true(r.ok);
  if (r.ok && r.value.kind === "response") {
    t.is(r.value.messageId, 0);
    t.deepEqual(r.value.outputs.map(String), ["fixed-answer", "fixed-answer"]);
  }
});

test("a registration without its RPC version frame decodes with rpcVersion null", (t) => {
  const r = decodeContainerMessage([Buffer.alloc(0), hex("00000000"), Buffer.from("m"), Buffer.from("1"), Buffer.from("4")]);
  t.deepEqual(r, { ok: true, value: { kind: "register", modelName: "m", modelVersion: "1", inputType: "strings", rpcVersion: null } });
});

test("malformed frames are refused with a reason, never thrown", (t) => {
  const bad: Buffer[][] = [
    [],
    [Buffer.from("x"), hex("02000000")],
    [Buffer.alloc(0), hex("0200")],
    [Buffer.alloc(0), hex("09000000")],
    [Buffer.alloc(0), hex("00000000"), Buffer.from("m"), Buffer.from("1"), Buffer.from("7")],
    [Buffer.alloc(0), hex("00000000"), Buffer.alloc(0), Buffer.from("1"), Buffer.from("3")],
    [Buffer.alloc(0), hex("01000000"), hex("00000000"), hex("1000000000000000"), hex("0100000000000000 0500000000000000"), Buffer.from("abc")],
    [Buffer.alloc(0), hex("01000000"), hex("00000000"), hex("1800000000000000"), hex("0100000000000000 0300000000000000")],
    [Buffer.alloc(0), hex("01000000"), hex("00000000"), hex("1000000000000000"), hex("0200000000000000 0300000000000000"), Buffer.from("abc")],
  ];
  for (const f of bad) {
    const r = decodeContainerMessage(f);
    t.false(r.ok, JSON.stringify(f.map((b) => b.toString("hex"))));
    if (!r.ok) t.true(r.error.length > 0);
  }
});
