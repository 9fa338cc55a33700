/**
 * What must be stopped when the benchmark ends, however it ends: the
 * normal path, a failure, a signal or the hard time limit. Child processes
 * are not tied to the harness's life, so they are stopped explicitly.
 */

const pending: (() => Promise<unknown>)[] = [];

/** Registers a stop step; steps run in reverse order of registration. */
export function atStop(step: () => Promise<unknown>): void {
  pending.push(step);
}

/** Runs every registered step once (newest first), ignoring their failures. */
export async function stopAll(): Promise<void> {
  while (pending.length > 0) {
    const step = pending.pop()!;
    await step().catch(() => {});
  }
}
