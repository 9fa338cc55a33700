/**
 * A short example of the typed client (clients/client.ts) against a running
 * stack (`clipper up`): one prediction, a batch, the apps and the live
 * workers. Run it with `npx tsx clients/example.ts`.
 */
import { createAdminClient, createHeartbeatClient, createPredictClient, isServiceError, statusName } from "./client.js";

const predict = createPredictClient(process.env.CLIPPER_GATEWAY_ADDR ?? "127.0.0.1:50051");
const admin = createAdminClient(process.env.CLIPPER_MANAGEMENT_ADDR ?? "127.0.0.1:50052");
const heartbeat = createHeartbeatClient(process.env.CLIPPER_GATEWAY_ADDR ?? "127.0.0.1:50051");
try {
  const one = await predict.predict({ app: "demo", input: { doubles: [1, 2, 3] } });
  console.log(`demo([1,2,3]) = ${one.output} (model ${one.model}:${one.modelVersion}, default ${one.default})`);
  const many = await predict.predictBatch({ app: "demo", inputs: [{ doubles: [1, 1] }, { doubles: [2, 2] }] }, { deadlineMs: 2_000 });
  console.log(`batch: ${many.predictions.map((p) => p.output).join(", ")}`);
  console.log(`apps: ${(await admin.listApps()).apps.map((a) => a.name).join(", ")}`);
  console.log(`live workers: ${(await heartbeat.listWorkers()).workers.length}`);
} catch (err) {
  // Every method rejects with grpc-js's ServiceError.
  console.error(isServiceError(err) ? `${statusName(err.code)}: ${err.details}` : err);
  process.exitCode = 1;
} finally {
  predict.close();
  admin.close();
  heartbeat.close();
}
