/**
 * The direct JSON ↔ ts-proto conversions of the transcoder against the
 * generic path (fromJson/toJson through the binary form): a seeded
 * differential fuzz over every bound method, valid and invalid bodies, and
 * valid and malformed handler responses. Both must give the same request
 * object, the same JSON text, or the same error.
 */
import { deepStrictEqual } from "node:assert";
import test from "ava";
import fc from "fast-check";
import { ScalarType, fromJson, toBinary, type DescField, type DescMessage, type JsonObject } from "@bufbuild/protobuf";
import type { MethodDefinition } from "@grpc/grpc-js";
import { AdminService } from "../../gen/clipper/v1/admin.js";
import { HeartbeatService } from "../../gen/clipper/v1/heartbeat.js";
import { PredictService } from "../../gen/clipper/v1/predict.js";
import { descriptorSet } from "../../core/descriptor-set.js";
import { ServingError } from "../../core/errors.js";
import { loadDescriptorRegistry } from "../../core/transcoding/http-rule.js";
import { RouteCodec } from "../../core/transcoding/handler-codec.js";
import { compileRoutes, type Route } from "../../core/transcoding/route.js";
import type { UnaryServiceBinding } from "../../core/service-binding.js";

const SEED = 1616;
const RUNS = 250;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the generated definitions' method types differ
type Definition = Record<string, MethodDefinition<any, any>>;
const services: [string, Definition][] = [
  ["clipper.v1.Predict", PredictService],
  ["clipper.v1.Admin", AdminService],
  ["clipper.v1.Heartbeat", HeartbeatService],
];
const bindings: UnaryServiceBinding[] = services.map(([name, definition]) => ({ name, definition, handlers: {} }));
const routes = compileRoutes(bindings, loadDescriptorRegistry(descriptorSet()));

/** Each route with a codec that only knows the generic path. */
const cases = routes.map((route) => {
  const definition = services.flatMap(([, d]) => Object.values(d)).find((m) => m.path === route.grpcPath)!;
  return { route, definition, generic: new RouteCodec(route.plan, definition, { direct: false }) };
});

type Outcome = { ok: true; value: unknown } | { ok: false; error: string };
function outcome(run: () => unknown): Outcome {
  try {
    return { ok: true, value: run() };
  } catch (err) {
    if (err instanceof ServingError) return { ok: false, error: `${err.code} ${err.reason} ${err.message}` };
    return { ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
}

const requestVia = (codec: RouteCodec, json: JsonObject): Outcome => outcome(() => codec.handlerRequest(codec.readRequest(json)));

// ---- arbitraries: JSON shaped after a message, mostly plausible, often wrong ----

const jsonNumber = fc.double({ noNaN: true, noDefaultInfinity: true });
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.boolean(),
  fc.string({ maxLength: 4 }),
  jsonNumber,
  fc.constant({}),
  fc.constant([]),
  fc.array(fc.integer(), { maxLength: 2 }),
  fc.constant([null]),
);

/** Mostly the canonical JSON of a valid value, sometimes an odd or invalid one. */
function scalarArb(scalar: ScalarType): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 6, arbitrary: canonicalArb(scalar) }, { weight: 1, arbitrary: oddScalarArb(scalar) });
}

function canonicalArb(scalar: ScalarType): fc.Arbitrary<unknown> {
  switch (scalar) {
    case ScalarType.DOUBLE:
      return jsonNumber;
    case ScalarType.FLOAT:
      return fc.float({ noNaN: true, noDefaultInfinity: true });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.STRING:
      return fc.string();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b).toString("base64"));
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.integer();
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.integer({ min: 0, max: 2 ** 32 - 1 });
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.maxSafeNat();
    default:
      return fc.maxSafeInteger();
  }
}

function oddScalarArb(scalar: ScalarType): fc.Arbitrary<unknown> {
  switch (scalar) {
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.oneof(
        jsonNumber,
        fc.float({ noNaN: true, noDefaultInfinity: true }),
        fc.constantFrom(-0, 0.1, 3.5e38, -3.5e38, 3.4028234663852886e38, 1e-46, 1e21, 5e-324),
        fc.constantFrom("NaN", "Infinity", "-Infinity", "1.5", " 2", "", "1e3", "abc"),
      );
    case ScalarType.BOOL:
      return fc.oneof(fc.boolean(), fc.constantFrom("true", "false", 0, 1));
    case ScalarType.STRING:
      return fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.string({ unit: "grapheme" }), fc.constantFrom("\ud800", "a\udc00b", "é"));
    case ScalarType.BYTES:
      return fc.oneof(
        fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b).toString("base64")),
        fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b).toString("base64url")),
        fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b).toString("base64").replace(/=+$/, "")),
        fc.string({ maxLength: 8 }),
        fc.constantFrom("", "QR==", "QQ", "Q", "====", "A B C D", "AQID\n", "-_-_", "AQ==AQ==", "AQ=", "*"),
      );
    default:
      return fc.oneof(
        fc.integer(),
        fc.integer({ min: -1000, max: 1000 }),
        fc.maxSafeInteger(),
        fc.constantFrom(2 ** 31, -(2 ** 31) - 1, 2 ** 32, 2 ** 32 - 1, 1.5, -0, 2 ** 53, -(2 ** 53), 2 ** 64, 1e300),
        fc.integer().map(String),
        fc.constantFrom("1.0", " 1", "0x10", "1e2", "", "-0", "9007199254740993"),
      );
  }
}

function enumArb(field: DescField & { enum: NonNullable<DescField["enum"]> }): fc.Arbitrary<unknown> {
  const names = field.enum.values.flatMap((v) => [v.name, v.jsonName]);
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...names) },
    { weight: 1, arbitrary: fc.oneof(fc.integer({ min: -3, max: 5 }), fc.integer(), fc.string({ maxLength: 4 }), fc.constantFrom(1.5, 2 ** 31)) },
  );
}

function singleArb(field: DescField, depth: number): fc.Arbitrary<unknown> {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind === "map" ? field.mapKind : field.fieldKind;
  if (kind === "message") return messageArb(field.message!, depth + 1);
  if (kind === "enum") return enumArb(field as DescField & { enum: NonNullable<DescField["enum"]> });
  return scalarArb(field.scalar!);
}

function fieldArb(field: DescField, depth: number): fc.Arbitrary<unknown> {
  const one = singleArb(field, depth);
  if (field.fieldKind === "list") {
    return fc.oneof({ weight: 9, arbitrary: fc.array(fc.oneof({ weight: 29, arbitrary: one }, { weight: 1, arbitrary: fc.constant(null) }), { maxLength: 4 }) }, { weight: 1, arbitrary: one });
  }
  if (field.fieldKind === "map") {
    return fc.dictionary(fc.string({ maxLength: 3 }), one, { maxKeys: 3 });
  }
  return one;
}

/** A key/value entry of a message's JSON: by JSON name, proto name, or both (a duplicate). */
type Entry = readonly [string, unknown];

function messageArb(desc: DescMessage, depth: number): fc.Arbitrary<unknown> {
  if (depth > 3) return fc.constantFrom({}, null);
  const fieldEntries = desc.fields.map((field) =>
    fc.option(
      fc.tuple(fc.constantFrom("json", "json", "json", "json", "json", "proto", "proto", "proto", "both"), fc.oneof({ weight: 19, arbitrary: fieldArb(field, depth) }, { weight: 1, arbitrary: fc.constant(null) }), junk).map(
        ([spelling, value, other]): Entry[] =>
          spelling === "json" ? [[field.jsonName, value]] : spelling === "proto" ? [[field.name, value]] : [[field.jsonName, value], [field.name, other]],
      ),
      { freq: 2 },
    ),
  );
  const extra = fc.oneof(
    { weight: 15, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constantFrom<Entry>(["__proto__", {}], ["unknownField", 1], ["Input", {}]) },
  );
  const object = fc.tuple(fc.tuple(...fieldEntries), extra).map(([entries, more]) => {
    const json: Record<string, unknown> = {};
    const all: Entry[] = entries.flatMap((e) => e ?? []);
    if (more !== null) all.push(more);
    // defineProperty keeps "__proto__" an own key, as JSON.parse does.
    for (const [k, v] of all) Object.defineProperty(json, k, { value: v, enumerable: true, writable: true, configurable: true });
    return json;
  });
  return depth === 0 ? object : fc.oneof({ weight: 29, arbitrary: object }, { weight: 1, arbitrary: junk });
}

// ---- the properties ----

test("Predict and PredictBatch take the direct way for requests and responses", (t) => {
  for (const { route } of cases.filter((c) => c.route.grpcPath.startsWith("/clipper.v1.Predict/"))) {
    t.deepEqual(route.codec.direct, { request: true, response: true }, route.description);
  }
  const predict = cases.find((c) => c.route.grpcPath === "/clipper.v1.Predict/Predict")!.route.codec;
  const read = predict.readRequest({ app: "a", input: { doubles: [1, 2.5, -0] }, version: "" });
  t.true(RouteCodec.wentDirect(read));
  t.deepEqual(predict.handlerRequest(read), {
    app: "a",
    input: { doubles: [1, 2.5, -0], floats: [], ints: [], bytes: Buffer.alloc(0), text: "" },
    version: "",
  });
  // Outside the direct shapes (a quoted number): the generic way, same result.
  const quoted = predict.readRequest({ app: "a", input: { doubles: ["1"] } });
  t.false(RouteCodec.wentDirect(quoted));
  t.deepEqual((predict.handlerRequest(quoted) as { input: { doubles: number[] } }).input.doubles, [1]);
  t.is(
    predict.writeResponse({ queryId: 7, output: "x\ud800", default: false, defaultExplanation: "", model: "m", modelVersion: "1" }),
    '{"queryId":"7","output":"x\ufffd","default":false,"defaultExplanation":"","model":"m","modelVersion":"1"}',
  );
});

test("every route that the direct codec covers gives the generic path's request or error on random bodies", (t) => {
  let direct = 0;
  let total = 0;
  for (const { route, generic } of cases) {
    fc.assert(
      fc.property(messageArb(route.plan.input, 0), (json) => {
        const body = json as JsonObject;
        total++;
        const fast = requestVia(route.codec, body);
        if (fast.ok && RouteCodec.wentDirect(route.codec.readRequest(body))) direct++;
        deepStrictEqual(fast, requestVia(generic, body), `${route.description}: ${JSON.stringify(body)}`);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  }
  t.log(`${direct} of ${total} random bodies went the direct way`);
  // The generator must reach the direct path often, or the comparison proves little.
  t.true(direct > total / 10);
});

/** Every (object, key) slot of a ts-proto object, for perturbing one. */
function slots(value: unknown, out: [Record<string | number, unknown>, string | number][] = []): [Record<string | number, unknown>, string | number][] {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return out;
  if (Array.isArray(value)) value.forEach((v, i) => (out.push([value as unknown as Record<number, unknown>, i]), slots(v, out)));
  else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      out.push([value as Record<string, unknown>, k]);
      slots(v, out);
    }
  }
  return out;
}

const oddValues: unknown[] = [undefined, null, NaN, Infinity, -Infinity, -0, 1e39, 2 ** 53, -(2 ** 60), 1.5, -1, 2 ** 31, 2 ** 32, "x", "\ud800", "", true, Buffer.from([1, 2]), new Uint8Array([3]), [], {}, [1]];

test("every route that the direct codec covers writes the generic path's JSON or error for random and malformed responses", (t) => {
  let compared = 0;
  for (const { route, definition, generic } of cases) {
    const desc = route.plan.output;
    const arb = fc.tuple(messageArb(desc, 0), fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 }));
    fc.assert(
      fc.property(arb, ([json, edits]) => {
        let response: unknown;
        try {
          const wire = toBinary(desc, fromJson(desc, json as JsonObject));
          response = definition.responseDeserialize(Buffer.from(wire.buffer, wire.byteOffset, wire.byteLength));
        } catch {
          return; // not a valid response message; handlers build theirs from valid values
        }
        const where = slots(response);
        for (const [slot, odd] of edits) {
          if (where.length === 0) break;
          const [obj, key] = where[slot % where.length]!;
          obj[key] = oddValues[odd % oddValues.length];
        }
        compared++;
        deepStrictEqual(outcome(() => route.codec.writeResponse(response)), outcome(() => generic.writeResponse(response)), route.description);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  }
  t.true(compared > RUNS);
});
