/*
 * Processes this one started, or knows by pid. Imports nothing, so clients/
 * may use it (test/architecture.test.ts).
 */

/**
 * Signals a child started with `detached: true` together with everything it
 * started (its process group), so no grandchild outlives it; a child that is
 * not a group leader is signalled alone. A process already gone is not an
 * error.
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

/** Whether a process with this pid exists (one owned by another user counts: signalling it is refused, not absent). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
