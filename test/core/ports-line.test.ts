import test from "ava";
import { GATEWAY_PORTS_LINE, MANAGEMENT_PORTS_LINE, WORKER_PORTS_LINE } from "../../core/ports-line.js";

const at = (host: string, port: number) => ({ host, port });

test("each ports line keeps its documented text", (t) => {
  t.is(
    GATEWAY_PORTS_LINE.format({ grpc: at("127.0.0.1", 50051), http: at("127.0.0.1", 1337), rpc: at("127.0.0.1", 7000) }),
    "clipper-gateway: grpc=127.0.0.1:50051 http=127.0.0.1:1337 rpc=tcp://127.0.0.1:7000",
  );
  t.is(MANAGEMENT_PORTS_LINE.format({ grpc: at("0.0.0.0", 50052), http: at("0.0.0.0", 1338) }), "clipper-management: grpc=0.0.0.0:50052 http=0.0.0.0:1338");
  t.is(WORKER_PORTS_LINE.format({ metrics: at("127.0.0.1", 9100) }), "clipper-worker: metrics=http://127.0.0.1:9100/metrics");
});

test("a line reads back what was formatted, IPv6 and named hosts included", (t) => {
  for (const host of ["127.0.0.1", "::", "::1", "fe80::1%eth0", "localhost", "0.0.0.0"]) {
    const gateway = { grpc: at(host, 50051), http: at(host, 1), rpc: at(host, 65535) };
    t.deepEqual(GATEWAY_PORTS_LINE.parse(`${GATEWAY_PORTS_LINE.format(gateway)}\n`), gateway, host);
    const management = { grpc: at(host, 0), http: at(host, 1338) };
    t.deepEqual(MANAGEMENT_PORTS_LINE.parse(`${MANAGEMENT_PORTS_LINE.format(management)}\n`), management, host);
    const worker = { metrics: at(host, 9100) };
    t.deepEqual(WORKER_PORTS_LINE.parse(`${WORKER_PORTS_LINE.format(worker)}\n`), worker, host);
  }
});

test("the line is found among other output, and only once it is complete", (t) => {
  const line = "clipper-gateway: grpc=:::50051 http=:::1337 rpc=tcp://:::7000";
  const output = `{"level":30,"msg":"gateway started"}\n${line}\nclipper-worker: m:1 (doubles) connecting to tcp://127.0.0.1:7000\n`;
  t.deepEqual(GATEWAY_PORTS_LINE.parse(output), { grpc: at("::", 50051), http: at("::", 1337), rpc: at("::", 7000) });
  // Half written: "70" is not the port.
  t.is(GATEWAY_PORTS_LINE.parse(line.slice(0, -2)), null);
  t.is(GATEWAY_PORTS_LINE.parse(line), null);
  // Another process's line, or text that merely contains one, is not it.
  t.is(MANAGEMENT_PORTS_LINE.parse(output), null);
  t.is(WORKER_PORTS_LINE.parse(output), null);
  t.is(GATEWAY_PORTS_LINE.parse(`not-clipper-gateway: grpc=a:1 http=a:2 rpc=tcp://a:3\n`), null);
});

test("pattern and read work on a process's output as the spawn helpers wait for it", (t) => {
  const match = WORKER_PORTS_LINE.pattern.exec("clipper-worker: m:1 (doubles) connecting to tcp://[::1]:7000\nclipper-worker: metrics=http://::1:41234/metrics\n");
  t.not(match, null);
  t.deepEqual(WORKER_PORTS_LINE.read(match!), { metrics: at("::1", 41234) });
});
