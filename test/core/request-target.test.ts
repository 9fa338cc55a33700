import test from "ava";
import { requestTarget } from "../../core/servers/request-target.js";

/** What a route would read, or that the target cannot be parsed at all (e.g. "//%": a host that is not one). */
const read = (parse: () => { pathname: string; searchParams: URLSearchParams }) => {
  try {
    const u = parse();
    return { pathname: u.pathname, params: [...u.searchParams] };
  } catch (err) {
    // URL's TypeError and requestTarget's INVALID_ARGUMENT are the same answer: not a path.
    return { error: "not a path" };
  }
};
const viaUrl = (raw: string) => read(() => new URL(raw, "http://localhost"));
const viaTarget = (raw: string) => read(() => requestTarget(raw));

const CASES = [
  "/",
  "/batch/predict",
  "/batch/predict/",
  "/v1/apps/noop:predict",
  "/v1/apps/noop:predict?version=2&x=a+b&y=%20&z",
  "/v2/models/m/versions/1.0/infer",
  "/a/../b",
  "/a/%2e%2e/b",
  "/a/./b",
  "//evil/predict",
  "/a\\b",
  "/a b",
  "/a#frag",
  "/a?q=1#frag",
  "/caf\u00e9",
  "/a?q=caf\u00e9",
  "/a?q='x'&r=\"y\"&s=<t>",
  "/a//b",
  "/%41",
  "/a|b",
  "/a?",
  "?q=1",
  "*",
  "http://other.example/x?y=1",
  "//%",
];

test("targets give the path and query parameters URL parsing gives", (t) => {
  for (const raw of CASES) t.deepEqual(viaTarget(raw), viaUrl(raw), raw);
});

test("random targets over the characters that matter give what URL parsing gives", (t) => {
  // A fixed-seed generator, so a failure names a target that reproduces.
  let seed = 0x2545f491;
  const next = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const alphabet = ["a", "Z", "0", "/", "/", ".", "..", "%", "%2e", "%41", "?", "#", "&", "=", "+", " ", ":", "@", "'", '"', "\\", "~", "-", "_", "!", "$", "*", "\u00e9", "\t", "|", "[", "{"];
  for (let i = 0; i < 20_000; i++) {
    let raw = "/";
    const len = next(12);
    for (let j = 0; j < len; j++) raw += alphabet[next(alphabet.length)];
    t.deepEqual(viaTarget(raw), viaUrl(raw), JSON.stringify(raw));
  }
});

test("a plain target is not given to URL, and its query is parsed only when read", (t) => {
  const plain = requestTarget("/batch/predict?x=1");
  t.false(plain instanceof URL);
  t.is(plain.searchParams.get("x"), "1");
  t.is(plain.searchParams, plain.searchParams, "parsed once");
  t.true(requestTarget("/a/../b") instanceof URL);
  t.is(requestTarget(undefined).pathname, "/");
});

test("a target that is not a URL path is INVALID_ARGUMENT, which HTTP answers with 400", (t) => {
  const err = t.throws(() => requestTarget("//%"));
  t.is((err as { code?: number }).code, 3);
  t.regex(err!.message, /request target "\/\/%" is not a URL path/);
});
