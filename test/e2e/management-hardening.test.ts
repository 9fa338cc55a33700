/**
 * Management's HTTP APIs against a web page the operator has open: bodies a
 * browser sends cross-site without a preflight get 415, and on a loopback
 * bind a Host that is not loopback (DNS rebinding) gets 421 unless listed
 * in --allowed-hosts. A real clipper-management process, real sockets.
 */
import test from "ava";
import { request } from "node:http";
import { MANAGEMENT_PORTS_LINE } from "../../core/ports-line.js";
import { spawnBin, type Proc } from "../helpers/processes.js";
import { TestRedis } from "../helpers/redis-server.js";

let redis: TestRedis;
let management: Proc;
let port: number;

test.before(async () => {
  redis = await TestRedis.start();
  management = spawnBin("clipper-management", ["--redis-url", redis.url, "--grpc-port", "0", "--http-port", "0", "--host", "127.0.0.1"], {
    CLIPPER_ALLOWED_HOSTS: "admin.example:9999, Other.Example",
  });
  port = MANAGEMENT_PORTS_LINE.read(await management.waitFor(MANAGEMENT_PORTS_LINE.pattern)).http.port;
});

test.after.always(async () => {
  await management?.stop();
  await redis?.destroy();
});

/** One request with exactly these headers (fetch would add a Content-Type to a string body and may not send our Host). */
function send(method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers: body === undefined ? headers : { ...headers, "content-length": String(Buffer.byteLength(body)) } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const APP = (name: string) => ({ name, input_type: "doubles", default_output: "-1", latency_slo_micros: 100000 });
const V1_APP = (name: string) => ({ name, inputType: "doubles", defaultOutput: "-1", latencySloMicros: 100000 });

const SIMPLE_TYPES = ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", null];

for (const type of SIMPLE_TYPES) {
  test.serial(`a body sent as ${type ?? "no Content-Type"} gets 415 on /admin/* and on transcoded Admin, and changes nothing`, async (t) => {
    const headers: Record<string, string> = type === null ? {} : { "content-type": type };
    for (const [path, body] of [["/admin/add_app", APP("x415")], ["/v1/apps", V1_APP("x415")]] as const) {
      const r = await send("POST", path, headers, JSON.stringify(body));
      t.is(r.status, 415, path);
      const status = JSON.parse(r.text) as { code: number; message: string };
      t.is(status.code, 3, "INVALID_ARGUMENT in the google.rpc.Status body");
      t.regex(status.message, /application\/json/);
    }
    t.deepEqual(JSON.parse((await send("GET", "/v1/apps", {})).text).apps ?? [], []);
  });
}

test.serial("a POST without a body and without a type gets 415 too; GET and JSON bodies pass", async (t) => {
  t.is((await send("POST", "/v1/apps", {})).status, 415);
  t.is((await send("POST", "/admin/get_all_applications", {})).status, 415);
  t.is((await send("GET", "/admin/ping", {})).status, 200);
  t.is((await send("POST", "/admin/add_app", { "content-type": "application/json" }, JSON.stringify(APP("json-a")))).status, 200);
  t.is((await send("POST", "/v1/apps", { "content-type": "Application/JSON; charset=utf-8" }, JSON.stringify(V1_APP("json-b")))).status, 200);
  const apps = JSON.parse((await send("GET", "/v1/apps", {})).text).apps as { name: string }[];
  t.deepEqual(apps.map((a) => a.name).sort(), ["json-a", "json-b"]);
});

test.serial("on a loopback bind a foreign Host gets 421 naming --allowed-hosts; loopback names and listed hosts pass; probes stay open", async (t) => {
  for (const path of ["/v1/apps", "/admin/ping", "/metrics"]) {
    const r = await send("GET", path, { host: `rebound.attacker.example:${port}` });
    t.is(r.status, 421, path);
    t.regex(JSON.parse(r.text).message, /--allowed-hosts/);
  }
  const write = await send("POST", "/admin/add_app", { host: "rebound.attacker.example", "content-type": "application/json" }, JSON.stringify(APP("rebound")));
  t.is(write.status, 421);
  for (const path of ["/healthz", "/readyz"]) t.is((await send("GET", path, { host: "rebound.attacker.example" })).status, 200, path);
  for (const host of [`127.0.0.1:${port}`, "127.1.2.3", "localhost", `LOCALHOST:${port}`, "[::1]", `[::1]:${port}`, "admin.example", "admin.example:1", "other.example"]) {
    t.is((await send("GET", "/v1/apps", { host })).status, 200, host);
  }
});

test("a flag's env variable that is not a boolean is an error naming it (exit 2)", async (t) => {
  const p = spawnBin("clipper-management", ["--redis-url", redis.url, "--grpc-port", "0", "--http-port", "0"], { CLIPPER_ALLOW_WORKER_COMMANDS: "yes" });
  t.is(await p.waitExit(15_000), 2);
  t.regex(p.output, /CLIPPER_ALLOW_WORKER_COMMANDS: 'yes' is not a boolean/);
});
