import test from "ava";
import { parseTcpEndpoint } from "../../core/tcp-endpoint.js";

test("names, IPv4 and bracketed IPv6 hosts parse; brackets are dropped", (t) => {
  t.deepEqual(parseTcpEndpoint("tcp://127.0.0.1:7000"), { ok: true, value: { host: "127.0.0.1", port: 7000 } });
  t.deepEqual(parseTcpEndpoint("tcp://gw.internal:7001"), { ok: true, value: { host: "gw.internal", port: 7001 } });
  t.deepEqual(parseTcpEndpoint("tcp://clipper_gateway:7000"), { ok: true, value: { host: "clipper_gateway", port: 7000 } });
  t.deepEqual(parseTcpEndpoint("tcp://[::1]:7000"), { ok: true, value: { host: "::1", port: 7000 } });
});

test("other schemes, missing or out-of-range ports and unbracketed IPv6 are errors naming the form", (t) => {
  for (const text of ["http://127.0.0.1:7000", "tcp://127.0.0.1", "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536", "tcp://::1:7000", "127.0.0.1:7000", ""]) {
    const r = parseTcpEndpoint(text);
    t.false(r.ok, text);
    if (!r.ok) t.regex(r.error, /tcp:\/\/HOST:PORT/);
  }
});
