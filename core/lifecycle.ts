import { watchStdinClose } from "./parent-watch.js";
import type { Logger } from "./telemetry/logger.js";

/** Something started that must be closed on shutdown. */
export interface Closable {
  close(graceMs?: number): Promise<void>;
  /** Re-reads what may change while serving (tokens, certificates), on SIGHUP. */
  reload?(): Promise<void>;
}

/** Longest a graceful shutdown may take before the process exits anyway, in ms. */
const SHUTDOWN_DEADLINE_MS = 10_000;

/**
 * Starts a component and closes it gracefully on SIGINT/SIGTERM. A second
 * signal, or a shutdown that overruns its deadline, exits at once. Exit code
 * is 0 after a clean close, 1 when start or close failed. SIGHUP reloads a
 * component that can (a server run on its own has no terminal to hang up;
 * `clipper up` starts its children in their own process groups and stops
 * them itself); one that cannot is closed, as before.
 *
 * With `exitWithStdin` (--exit-with-stdin), the end of standard input means
 * the process that started this one is gone (core/parent-watch.ts): it
 * exits at once, starting or serving, as if killed. Nothing is drained:
 * the starter is dead, so nobody waits for a clean stop, and a replica
 * manager's workers keep running for the next management to adopt, as
 * after a kill -9 of management.
 */
export async function runUntilSignal(log: Logger, start: () => Promise<Closable>, options: { exitWithStdin?: boolean } = {}): Promise<void> {
  if (options.exitWithStdin === true) {
    watchStdinClose(() => {
      log.warn("standard input closed: the process that started this one is gone; exiting");
      process.exit(1);
    });
  }
  let component: Closable;
  try {
    component = await start();
  } catch (err) {
    log.fatal({ err }, "failed to start");
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      log.warn({ signal }, "second signal, exiting now");
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, "shutting down");
    setTimeout(() => {
      log.error("shutdown overran its deadline, exiting");
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    component.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "error while shutting down");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  const reload = component.reload?.bind(component);
  process.on("SIGHUP", () => {
    if (reload === undefined) {
      stop("SIGHUP");
      return;
    }
    log.info({ signal: "SIGHUP" }, "reloading");
    reload().catch((err: unknown) => log.error({ err }, "reload failed"));
  });
}
