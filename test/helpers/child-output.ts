import type { ChildProcess } from "node:child_process";

/**
 * Resolves once `child` has printed `marker` on its standard output. If it
 * exits, fails to spawn, or stays silent past `timeoutMs`, it is killed and
 * the promise rejects with what it printed. Only the listeners added here
 * are removed afterwards, so the caller's own exit listeners stay; its
 * output is drained from then on.
 */
export function awaitOutput(child: ChildProcess, marker: string, what: string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let out = "";
    const done = (): void => {
      clearTimeout(timer);
      // Keep draining: a server that logs to stdout would block on a full pipe.
      child.stdout!.off("data", onData);
      child.stdout!.resume();
      child.off("exit", onExit);
      child.off("error", fail);
    };
    const fail = (err: Error): void => {
      done();
      child.kill("SIGKILL");
      reject(err);
    };
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (!out.includes(marker)) return;
      done();
      resolve();
    };
    const onExit = (code: number | null): void => fail(new Error(`${what} exited with ${code}:\n${out}`));
    const timer = setTimeout(() => fail(new Error(`${what} did not start within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    child.stdout!.on("data", onData);
    child.once("exit", onExit);
    child.once("error", fail);
  });
}
