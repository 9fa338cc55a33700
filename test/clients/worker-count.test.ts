import test from "ava";
import { countWorkers } from "../../clients/cli/worker-count.js";

const entry = (modelName: string, replicaId: number, workerId = "") => ({ modelName, modelVersion: "1", replicaId, workerId });

test("a worker connected to several gateways counts once; entries without a worker id count by their DB 3 key, across models too", (t) => {
  t.is(countWorkers([entry("a", 0, "w1"), entry("a", 1, "w1")]), 1);
  // Replica ids are unique per model version only: two models' replica 0 are two workers.
  t.is(countWorkers([entry("a", 0), entry("b", 0)]), 2);
  t.is(countWorkers([entry("a", 0), entry("a", 0)]), 1);
  t.is(countWorkers([]), 0);
});
