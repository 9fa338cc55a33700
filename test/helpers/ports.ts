import { readFileSync, mkdirSync, writeFileSync, unlinkSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processExists } from "../../core/process-group.js";

/*
 * A port handed to a child process must stay free until the child binds it.
 * `listen(0)` cannot promise that: the kernel draws it from the ephemeral
 * range, where every outgoing connection on the host (another test's client,
 * Redis replication, a health probe) takes its local port too, and another
 * test file may be handed the same port a moment later. So ports come from
 * below the ephemeral range, and each is claimed with an exclusive file that
 * every test process on the host honours until its owner exits.
 */

/** Lowest port handed out; below it sit well-known services. */
const LOWEST = 20_000;
const CLAIMS_DIR = join(tmpdir(), "clipper-test-ports");
const claimed = new Set<number>();

process.once("exit", () => {
  for (const port of [...claimed]) release(port);
});

/** First port of the kernel's ephemeral range (outgoing connections' local ports). */
function ephemeralLow(): number {
  try {
    const low = Number.parseInt(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0] ?? "", 10);
    return Number.isInteger(low) && low > LOWEST + 1000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Claims `port` for this process unless a live process holds it. */
function claim(port: number): boolean {
  const file = join(CLAIMS_DIR, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: "wx" });
      claimed.add(port);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let owner: number;
      try {
        owner = Number.parseInt(readFileSync(file, "utf8"), 10);
      } catch {
        continue; // its owner released it just now: try again
      }
      if (Number.isInteger(owner) && owner > 0 && processExists(owner)) return false;
      // Left by a process that died without its exit hook (another may take it over first).
      removeClaim(port);
    }
  }
  return false;
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

function removeClaim(port: number): void {
  try {
    unlinkSync(join(CLAIMS_DIR, String(port)));
  } catch {
    // already gone
  }
}

function release(port: number): void {
  claimed.delete(port);
  removeClaim(port);
}

/**
 * A TCP port on 127.0.0.1 that is free now, outside the ephemeral range, and
 * handed to no other test process on this host while this one runs.
 */
export async function freePort(): Promise<number> {
  mkdirSync(CLAIMS_DIR, { recursive: true });
  const span = ephemeralLow() - LOWEST;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * span);
    if (claimed.has(port) || !claim(port)) continue;
    if (await bindable(port)) return port;
    release(port);
  }
  throw new Error(`no free port found below ${ephemeralLow()} after 200 tries`);
}
