/**
 * The catalog both Open Inference Protocol e2e suites (gRPC and REST) call:
 * apps over the describe and slow fixture models, with workers running.
 */
import type { Stack } from "./stack.js";

const DESCRIBE = "test/fixtures/models/describe.js";
const SLOW = "test/fixtures/models/slow.js";

/**
 * Deploys and starts:
 * - `d-app` → `describe-d` (doubles): version 2 is registered (and so
 *   current), then 1 made current again, so 2 is only reachable pinned;
 * - `s-app` → `describe-s` (strings);
 * - `slow-app` → `slow` with an SLO of 20 s;
 * - `nolink`, an app with no linked model.
 */
export async function deployOipCatalog(stack: Stack): Promise<void> {
  await stack.deploy("d-app", "describe-d", "1", "doubles");
  await stack.admin("add_model", { model_name: "describe-d", model_version: "2", labels: [], input_type: "doubles", container_name: "", model_data_path: "", batch_size: -1 });
  await stack.admin("set_model_version", { model_name: "describe-d", model_version: "1" });
  await stack.deploy("s-app", "describe-s", "1", "strings");
  await stack.deploy("slow-app", "slow", "1", "doubles", { sloMicros: 20_000_000 });
  await stack.admin("add_app", { name: "nolink", input_type: "doubles", default_output: "none", latency_slo_micros: 1_000_000 });
  await Promise.all([
    stack.worker("describe-d", "1", "doubles", DESCRIBE),
    stack.worker("describe-d", "2", "doubles", DESCRIBE),
    stack.worker("describe-s", "1", "strings", DESCRIBE),
    stack.worker("slow", "1", "doubles", SLOW),
  ]);
}
