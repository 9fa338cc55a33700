/**
 * The HTTP ceiling: a bare node:http server that reads a JSON body, parses
 * it and answers a small JSON object on any POST (no routing, transcoding,
 * catalog, queue or worker hop), counting its requests on a counter
 * endpoint. Prints `bare-http: port=N`; stops on SIGTERM/SIGINT.
 *
 *   node --import tsx bench/servers/bare-http.ts
 *   node dist/bench/servers/bare-http.js      (after npm run build; what bench/lib/stack.ts runs when fresh)
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { startCounterEndpoint } from "../lib/counter.js";

const counts = startCounterEndpoint();
let nextQueryId = 0;

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    let status = 200;
    let body: string;
    try {
      const doc = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { input?: unknown };
      counts.calls++;
      counts.items++;
      body = JSON.stringify({ query_id: nextQueryId++, output: doc.input === undefined ? -1 : 0, default: false });
    } catch {
      status = 400;
      body = JSON.stringify({ error: "Json error" });
    }
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`bare-http: port=${(server.address() as AddressInfo).port}\n`);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close();
    process.exit(0);
  });
}
