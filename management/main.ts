import { COMMON_OPTIONS, configOrExit } from "../core/config.js";
import { runUntilSignal } from "../core/lifecycle.js";
import { createLogger } from "../core/telemetry/logger.js";
import { startManagement } from "./management.js";

const OPTIONS = {
  ...COMMON_OPTIONS,
  "grpc-port": { kind: "port", env: "CLIPPER_MANAGEMENT_GRPC_PORT", default: "50052", help: "gRPC port (clipper.v1.Admin, health, reflection)" },
  "http-port": { kind: "port", env: "CLIPPER_MANAGEMENT_HTTP_PORT", default: "1338", help: "HTTP port (transcoded Admin, Clipper /admin/*, /metrics)" },
} as const;

const c = configOrExit("clipper-management", OPTIONS);
const log = createLogger("clipper-management", c["log-level"]);
await runUntilSignal(log, async () => {
  const m = await startManagement({ redisUrl: c["redis-url"], host: c.host, grpcPort: c["grpc-port"], httpPort: c["http-port"] }, log);
  // One plain line for people and scripts; the JSON log has the same facts.
  process.stdout.write(`clipper-management: grpc=${c.host}:${m.grpcPort} http=${c.host}:${m.httpPort}\n`);
  return m;
});
