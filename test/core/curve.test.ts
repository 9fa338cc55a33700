import test from "ava";
import { curveKeyPair } from "zeromq";
import { publicKeyOf, rawKey, sharedSecret } from "../../core/curve/curve-keys.js";
import { generateKeyPair } from "../../core/curve/key-pair.js";
import { registrationProof, verifyRegistrationProof } from "../../core/curve/registration-proof.js";
import { keyAllows, parseWorkerKeys } from "../../core/curve/worker-keys-file.js";
import { z85Decode, z85Encode } from "../../core/curve/z85.js";

test("Z85 matches the specification's example and round-trips", (t) => {
  // ZeroMQ RFC 32's test vector.
  const bytes = Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
  t.is(z85Encode(bytes), "HelloWorld");
  t.deepEqual(z85Decode("HelloWorld"), bytes);
  const random = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 11) % 256));
  t.deepEqual(z85Decode(z85Encode(random)), random);
});

test("Z85 refuses what is not Z85", (t) => {
  t.is(z85Decode("Hell"), null, "length not a multiple of 5");
  t.is(z85Decode("Hello Worl"), null, "a space is not in the alphabet");
  t.is(z85Decode("#####"), null, "a group above 2^32 - 1");
  t.throws(() => z85Encode(Buffer.alloc(3)));
});

test("keys made by Node and by zeromq agree: the public key derives from the secret", (t) => {
  for (const pair of [generateKeyPair(), curveKeyPair()]) {
    const secret = rawKey(pair.secretKey)!;
    t.is(z85Encode(publicKeyOf(secret)), pair.publicKey);
  }
  t.is(rawKey("too short"), null);
});

test("both sides compute the same shared secret", (t) => {
  const a = generateKeyPair();
  const b = curveKeyPair();
  t.deepEqual(sharedSecret(rawKey(a.secretKey)!, rawKey(b.publicKey)!), sharedSecret(rawKey(b.secretKey)!, rawKey(a.publicKey)!));
});

test("a registration proof verifies only for its key, routing id, model and version", (t) => {
  const worker = generateKeyPair();
  const other = generateKeyPair();
  const gateway = generateKeyPair();
  const claim = { routingId: Buffer.from("abcdefghijklmnopqrstuv"), modelName: "m", modelVersion: "1" };
  const proof = registrationProof(rawKey(worker.secretKey)!, rawKey(gateway.publicKey)!, claim);
  const gs = rawKey(gateway.secretKey)!;
  t.true(verifyRegistrationProof(gs, rawKey(worker.publicKey)!, claim, proof));
  t.false(verifyRegistrationProof(gs, rawKey(other.publicKey)!, claim, proof), "another key");
  t.false(verifyRegistrationProof(gs, rawKey(worker.publicKey)!, { ...claim, modelName: "n" }, proof), "another model");
  t.false(verifyRegistrationProof(gs, rawKey(worker.publicKey)!, { ...claim, modelVersion: "2" }, proof), "another version");
  t.false(verifyRegistrationProof(gs, rawKey(worker.publicKey)!, { ...claim, routingId: Buffer.from("x") }, proof), "another connection");
  t.false(verifyRegistrationProof(gs, rawKey(worker.publicKey)!, claim, proof.subarray(1)), "truncated");
  // Field boundaries are part of what is signed: "m"+"1" is not "m1"+"".
  t.false(verifyRegistrationProof(gs, rawKey(worker.publicKey)!, { ...claim, modelName: "m1", modelVersion: "" }, proof));
});

test("the worker keys file: keys with and without models, comments, and errors naming the line", (t) => {
  const a = generateKeyPair().publicKey;
  const b = generateKeyPair().publicKey;
  const parsed = parseWorkerKeys(`# fleet\n${a}\n\n${b} fraud,spam  # limited\n`, "keys");
  t.true(parsed.ok);
  if (!parsed.ok) return;
  const [ea, eb] = [parsed.value.get(rawKey(a)!.toString("hex")), parsed.value.get(rawKey(b)!.toString("hex"))];
  t.true(keyAllows(ea, "anything"));
  t.true(keyAllows(eb, "spam"));
  t.false(keyAllows(eb, "other"));
  t.false(keyAllows(undefined, "spam"));
  t.deepEqual(parseWorkerKeys("nope\n", "keys"), { ok: false, error: "keys:1: 'nope' is not a 40-character Z85 public key" });
  t.deepEqual(parseWorkerKeys(`${a} m:1\n`, "keys"), { ok: false, error: "keys:1: model name 'm:1' must not contain ',' or ':' (Clipper uses them as key separators)" });
  t.regex((parseWorkerKeys(`${a}\n${a}\n`, "keys") as { error: string }).error, /^keys:2: key .* is listed twice$/);
  t.regex((parseWorkerKeys(`${a} m extra\n`, "keys") as { error: string }).error, /^keys:1: expected/);
});

test("a public key given as a path is read from the file, even when the path is 40 Z85 characters", async (t) => {
  const { mkdtempSync, writeFileSync, rmSync, mkdirSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { readPublicKey } = await import("../../core/curve/curve-keys.js");
  const base = mkdtempSync("/tmp/k");
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  // Pad the directory so that the whole path is exactly 40 characters of the Z85 alphabet.
  const name = "gateway.pub";
  const dir = join(base, "x".repeat(40 - base.length - 2 - name.length));
  mkdirSync(dir);
  const path = join(dir, name);
  t.is(path.length, 40);
  const key = generateKeyPair().publicKey;
  writeFileSync(path, `# comment\n${key}\n`);
  t.deepEqual(await readPublicKey(path), { ok: true, value: { publicKey: key, raw: rawKey(key)! } });
  t.deepEqual(await readPublicKey(key), { ok: true, value: { publicKey: key, raw: rawKey(key)! } });
  t.false((await readPublicKey("/no/such/file")).ok);
});
