import test from "ava";
import type { DeploymentRecord } from "../../core/deployment-layout.js";
import { parseInputType } from "../../core/input-types.js";
import { loadGatewayAccess, type GatewayAccessFlags } from "../../management/gateway-access.js";
import { workerCommand } from "../../management/worker-spec.js";

const flags = (rpc: string, clipperV3 = ""): GatewayAccessFlags => ({ "gateway-rpc": rpc, "gateway-clipper-v3": clipperV3, "worker-curve-secret-key": "", "gateway-public-key": "" });

const deployment: DeploymentRecord = {
  name: "m",
  version: "1",
  inputType: parseInputType("doubles")!,
  replicas: 1,
  worker: { module: "/m.js", command: [], python: "", env: {}, workingDir: "/", concurrency: 0, maxBatchSize: 0 },
};

async function envOf(rpc: string, clipperV3 = ""): Promise<NodeJS.ProcessEnv> {
  const access = await loadGatewayAccess(flags(rpc, clipperV3));
  if (!access.ok) throw new Error(access.error);
  return workerCommand(deployment, access.value, "info", {}).env;
}

test("workers get the --gateway-rpc list as given, ipc:// entries included; Clipper containers the first tcp:// one", async (t) => {
  const env = await envOf("ipc:///run/clipper/rpc-0.sock,tcp://gw:7000");
  t.like(env, { CLIPPER_GATEWAY: "ipc:///run/clipper/rpc-0.sock,tcp://gw:7000", CLIPPER_IP: "gw", CLIPPER_PORT: "7000" });
});

test("with only ipc:// entries, Clipper containers get no address unless --gateway-clipper-v3 names one", async (t) => {
  const env = await envOf("ipc:///run/clipper/rpc-0.sock");
  t.is(env.CLIPPER_GATEWAY, "ipc:///run/clipper/rpc-0.sock");
  t.false("CLIPPER_IP" in env || "CLIPPER_PORT" in env);
  t.like(await envOf("ipc:///run/clipper/rpc-0.sock", "tcp://127.0.0.1:7001"), { CLIPPER_IP: "127.0.0.1", CLIPPER_PORT: "7001" });
});

test("a bad --gateway-rpc entry is an error naming the flag and the entry", async (t) => {
  for (const [rpc, pattern] of [
    ["ipc://run/clipper.sock", /--gateway-rpc: 'ipc:\/\/run\/clipper\.sock': the socket path 'run\/clipper\.sock' is not absolute/],
    [`tcp://gw:7000,ipc:///${"z".repeat(110)}`, /--gateway-rpc: .*at most 107/],
    ["gw:7000", /--gateway-rpc: 'gw:7000' is not tcp:\/\/HOST:PORT/],
  ] as const) {
    const r = await loadGatewayAccess(flags(rpc));
    t.false(r.ok, rpc);
    if (!r.ok) t.regex(r.error, pattern);
  }
});
