/**
 * The benchmark's outside tools, installed from Debian when missing:
 * h2load (nghttp2-client) drives gRPC, wrk drives HTTP/1.1, gnuplot draws
 * the chart. `apt-get update` runs at most once per process.
 */
import { execFileSync, spawnSync } from "node:child_process";

/** Each tool and the Debian package that ships it. */
export const TOOL_PACKAGES = {
  h2load: "nghttp2-client",
  wrk: "wrk",
  gnuplot: "gnuplot-nox",
} as const;

export type Tool = keyof typeof TOOL_PACKAGES;

/** Longest an apt-get step may take, in ms (an update took ~4 s and an install ~11 s here). */
const APT_TIMEOUT_MS = 180_000;

function has(tool: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" }).status === 0;
}

/**
 * Installs the packages of the missing `tools` (apt-get update once, then
 * one install with --no-install-recommends; via sudo when not root).
 * Throws with what to run by hand when that fails.
 */
export function ensureTools(tools: readonly Tool[], log: (line: string) => void): void {
  const missing = tools.filter((t) => !has(t));
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map((t) => TOOL_PACKAGES[t]))];
  const sudo = process.getuid?.() === 0 ? [] : ["sudo"];
  log(`installing ${packages.join(" ")} (missing: ${missing.join(", ")})`);
  const run = (args: string[]): void => {
    const [cmd, ...rest] = [...sudo, ...args];
    const r = spawnSync(cmd!, rest, {
      stdio: ["ignore", "ignore", "pipe"],
      timeout: APT_TIMEOUT_MS,
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
    if (r.status !== 0) {
      throw new Error(`'${[cmd, ...rest].join(" ")}' failed (${r.status ?? r.signal}): ${r.stderr?.toString().trim()}\n` +
        `install by hand: apt-get update && apt-get install -y --no-install-recommends ${packages.join(" ")}`);
    }
  };
  run(["apt-get", "update", "-qq"]);
  run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", ...packages]);
  const still = missing.filter((t) => !has(t));
  if (still.length > 0) throw new Error(`still missing after install: ${still.join(", ")}`);
}

/** First line a tool prints about its version (wrk prints it with a non-zero exit). */
export function toolVersion(tool: Tool): string {
  const args: Record<Tool, string[]> = { h2load: ["--version"], wrk: ["-v"], gnuplot: ["--version"] };
  try {
    return execFileSync(tool, args[tool], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).split("\n")[0]!.trim();
  } catch (err) {
    const out = (err as { stdout?: string }).stdout ?? "";
    return out.split("\n")[0]?.trim() || "unknown";
  }
}
