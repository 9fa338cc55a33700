/*
 * The gateway's heap. Under load its RSS is mostly V8 heap: a new space
 * that grows to 3 × the semi-space size, and an old space that V8 lets fill
 * with promoted request garbage up to ~4 × the live heap before a full GC
 * (gRPC no-op load at c=64, compiled: 22 MiB live, full GC at ~100 MiB,
 * peak RSS ~190 MiB). With both caps below the peak was ~114 MiB, with the
 * growing percentage alone ~131 MiB; full GCs run ~4× as often, but GC time
 * per request stayed within the noise of a shared 2-core machine.
 *
 * The young generation is sized once, when the isolate is created, so these
 * flags belong on the gateway's command line: bin/launch.js re-executes the
 * gateway with them where Node can (process.execve), and whoever spawns a
 * gateway (`clipper up`, the bench) passes them. This module imports
 * nothing, so each of those may use it.
 */

/** Young-generation cap, MiB per semi-space (V8's default is 16). */
export const GATEWAY_SEMI_SPACE_MIB = 8;
/** Old-space growth allowed before the next full GC, per cent of the heap live after the last one (V8's default is dynamic, up to 300). */
export const GATEWAY_HEAP_GROWING_PERCENT = 50;

/** Matches the semi-space flag in either spelling V8 accepts. */
export const SEMI_SPACE_FLAG = /--max[-_]semi[-_]space[-_]size/;
/** Matches the heap growing flag in either spelling V8 accepts. */
export const HEAP_GROWING_FLAG = /--heap[-_]growing[-_]percent/;

/**
 * The gateway's heap flags the user did not already choose, in NODE_OPTIONS
 * (which a child inherits) or in `execArgv`.
 */
export function gatewayNodeFlags(env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = []): string[] {
  const chose = (flag: RegExp): boolean => flag.test(env.NODE_OPTIONS ?? "") || execArgv.some((a) => flag.test(a));
  const flags: string[] = [];
  if (!chose(SEMI_SPACE_FLAG)) flags.push(`--max-semi-space-size=${GATEWAY_SEMI_SPACE_MIB}`);
  if (!chose(HEAP_GROWING_FLAG)) flags.push(`--heap-growing-percent=${GATEWAY_HEAP_GROWING_PERCENT}`);
  return flags;
}
