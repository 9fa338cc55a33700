/**
 * Signals a child started with `detached: true` together with everything it
 * started (its process group), so no grandchild outlives it; a child that is
 * not a group leader is signalled alone. A process already gone is not an
 * error. Imports nothing, so clients/ may use it (test/architecture.test.ts).
 */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined || pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}
