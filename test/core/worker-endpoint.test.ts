import test from "ava";
import { spawnSync } from "node:child_process";
import { formatWorkerEndpoint, IPC_PATH_MAX_BYTES, ipcPathProblem, parseTcpEndpoint, parseWorkerEndpointList } from "../../core/worker-endpoint.js";
import { PYTHON, pythonWorkerEnv } from "../helpers/python-worker.js";
import { ROOT } from "../helpers/processes.js";

test("names, IPv4 and bracketed IPv6 hosts parse; brackets are dropped", (t) => {
  t.deepEqual(parseTcpEndpoint("tcp://127.0.0.1:7000"), { ok: true, value: { host: "127.0.0.1", port: 7000 } });
  t.deepEqual(parseTcpEndpoint("tcp://gw.internal:7001"), { ok: true, value: { host: "gw.internal", port: 7001 } });
  t.deepEqual(parseTcpEndpoint("tcp://clipper_gateway:7000"), { ok: true, value: { host: "clipper_gateway", port: 7000 } });
  t.deepEqual(parseTcpEndpoint("tcp://[::1]:7000"), { ok: true, value: { host: "::1", port: 7000 } });
});

test("other schemes, missing or out-of-range ports and unbracketed IPv6 are errors naming the form", (t) => {
  for (const text of ["http://127.0.0.1:7000", "tcp://127.0.0.1", "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536", "tcp://::1:7000", "127.0.0.1:7000", "", "ipc:///tmp/a.sock"]) {
    const r = parseTcpEndpoint(text);
    t.false(r.ok, text);
    if (!r.ok) t.regex(r.error, /tcp:\/\/HOST:PORT/);
  }
});

/** The longest path a socket can have, and one byte more (a two-byte character last). */
const longest = `/${"a".repeat(IPC_PATH_MAX_BYTES - 1)}`;
const tooLong = `/${"a".repeat(IPC_PATH_MAX_BYTES - 2)}é`;

/**
 * Worker endpoint lists and what they parse to (the endpoints, formatted
 * back) or the error they give (a pattern): the TypeScript parser and the
 * Python worker's must agree on every one.
 */
const LISTS: [string, string[] | RegExp][] = [
  ["tcp://127.0.0.1:7000", ["tcp://127.0.0.1:7000"]],
  ["ipc:///run/clipper/rpc-0.sock", ["ipc:///run/clipper/rpc-0.sock"]],
  [" ipc:///tmp/a.sock , tcp://[::1]:7000,ipc:///tmp/a.sock,tcp://gw:7001", ["ipc:///tmp/a.sock", "tcp://[::1]:7000", "tcp://gw:7001"]],
  [`ipc://${longest}`, [`ipc://${longest}`]],
  ["ipc:///tmp/é.sock", ["ipc:///tmp/é.sock"]],
  [`ipc://${tooLong}`, /is 108 bytes long; a Unix domain socket's path holds at most 107/],
  ["ipc://relative.sock", /'ipc:\/\/relative\.sock': the socket path 'relative\.sock' is not absolute/],
  ["ipc://", /is not absolute/],
  ["ipc:///tmp/a b.sock", /holds whitespace, a ',' or a control character/],
  ["ipc:///tmp/a\u0000b.sock", /'\/tmp\/a\?b\.sock' holds whitespace, a ',' or a control character/],
  ["ipc:///tmp/a\tb", /holds whitespace/],
  ["ipc:/tmp/a.sock", /is not tcp:\/\/HOST:PORT .* nor ipc:\/\/\/absolute\/path/],
  ["unix:///tmp/a.sock", /nor ipc:\/\/\/absolute\/path/],
  ["tcp://127.0.0.1:7000,ipc://x", /'ipc:\/\/x'/],
  [" , ", /no endpoint given/],
];

test("worker endpoint lists: tcp:// and ipc:// entries, duplicates dropped, bad ones named", (t) => {
  for (const [text, expected] of LISTS) {
    const r = parseWorkerEndpointList(text);
    if (Array.isArray(expected)) t.deepEqual(r.ok ? r.value.map(formatWorkerEndpoint) : r.error, expected, JSON.stringify(text));
    else t.regex(r.ok ? "parsed" : r.error, expected, JSON.stringify(text));
  }
  t.deepEqual(parseWorkerEndpointList("ipc:///tmp/a.sock"), { ok: true, value: [{ kind: "ipc", path: "/tmp/a.sock" }] });
  t.deepEqual(parseWorkerEndpointList("tcp://h:1"), { ok: true, value: [{ kind: "tcp", host: "h", port: 1 }] });
});

test("a socket path is checked by its length in bytes, not characters", (t) => {
  t.is(ipcPathProblem(longest), null);
  t.regex(ipcPathProblem(tooLong) ?? "", /108 bytes/);
  t.is(tooLong.length, IPC_PATH_MAX_BYTES);
});

test("the Python worker parses every list as the TypeScript parser does", (t) => {
  const script = [
    "import json, sys",
    "from clipper_worker.config import parse_endpoint_list",
    "out = []",
    "for text in json.load(sys.stdin):",
    "    r = parse_endpoint_list(text)",
    "    out.append(r if isinstance(r, str) else [str(e) for e in r])",
    "print(json.dumps(out))",
  ].join("\n");
  const run = spawnSync(PYTHON, ["-c", script], { cwd: ROOT, env: pythonWorkerEnv(), input: JSON.stringify(LISTS.map(([text]) => text)), encoding: "utf8" });
  t.is(run.status, 0, run.stderr);
  const answers = JSON.parse(run.stdout) as (string | string[])[];
  LISTS.forEach(([text, expected], i) => {
    if (Array.isArray(expected)) t.deepEqual(answers[i], expected, JSON.stringify(text));
    else t.regex(typeof answers[i] === "string" ? (answers[i] as string) : "parsed", expected, JSON.stringify(text));
  });
});
