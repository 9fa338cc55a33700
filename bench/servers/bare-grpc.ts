/**
 * The gRPC ceiling: a bare grpc-js server with clipper.v1.Predict/Predict
 * and nothing else (same generated codecs as the gateway, no catalog, queue
 * or worker hop), counting its calls on a counter endpoint. Prints
 * `bare-grpc: port=N`; stops on SIGTERM/SIGINT.
 *
 *   node --import tsx bench/servers/bare-grpc.ts
 *   node dist/bench/servers/bare-grpc.js      (after npm run build; what bench/lib/stack.ts runs when fresh)
 */
import * as grpc from "@grpc/grpc-js";
import { PredictService, type PredictRequest, type PredictResponse } from "../../gen/clipper/v1/predict.js";
import { startCounterEndpoint } from "../lib/counter.js";

const counts = startCounterEndpoint();
let nextQueryId = 0;

function predict(call: grpc.ServerUnaryCall<PredictRequest, PredictResponse>, callback: grpc.sendUnaryData<PredictResponse>): void {
  counts.calls++;
  counts.items++;
  const items = call.request.input?.doubles.length ?? 0;
  callback(null, { queryId: nextQueryId++, output: String(items > 0 ? 0 : -1), default: false, defaultExplanation: "", model: "bare", modelVersion: "1" });
}

const server = new grpc.Server();
server.addService(PredictService, { predict } as grpc.UntypedServiceImplementation);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err !== null) {
    process.stderr.write(`bare-grpc: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`bare-grpc: port=${port}\n`);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    server.forceShutdown();
    process.exit(0);
  });
}
