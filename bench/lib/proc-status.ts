/**
 * Memory and CPU time of a running process, read from /proc (Linux only):
 * the issue asks for gateway and worker RSS, and CPU time per request shows
 * which process a run was bound by.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on every Linux this runs on). */
const CLOCK_TICKS_PER_SECOND = 100;

/** Resident memory of a process, in MiB. */
export interface Memory {
  /** Peak resident set size since the process started (VmHWM). */
  readonly peakMiB: number;
  /** Resident set size now (VmRSS). */
  readonly rssMiB: number;
}

/** VmHWM and VmRSS of `pid`, or null when it is gone or /proc is unavailable. */
export function readMemory(pid: number): Memory | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const kib = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return m === null ? NaN : Number(m[1]);
  };
  return { peakMiB: kib("VmHWM") / 1024, rssMiB: kib("VmRSS") / 1024 };
}

/** User + system CPU time `pid` has used, in seconds, or NaN when unreadable. */
export function readCpuSeconds(pid: number): number {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return NaN;
  }
  // The command name (field 2) may contain spaces; fields after its ')' are fixed.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state), so utime (14) and stime (15) are rest[11] and rest[12].
  return (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS_PER_SECOND;
}

/** CPU seconds used so far by each thread of `pid`, summed by thread name (comm), e.g. "node", "ZMQbg/IO/0", "V8Worker". */
export function readThreadCpuSeconds(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue;
    }
    const name = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"));
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const seconds = (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS_PER_SECOND;
    out.set(name, (out.get(name) ?? 0) + seconds);
  }
  return out;
}

/** `pid` and every process below it (children's children too), from /proc/<pid>/task/<tid>/children. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const text = readFileSync(`/proc/${out[i]}/task/${tid}/children`, "utf8").trim();
        if (text !== "") out.push(...text.split(" ").map(Number));
      } catch {
        // A thread that ended meanwhile.
      }
    }
  }
  return out;
}

/** CPU seconds used so far by `pid` and every process below it (a gateway run with --processes is a primary and its processes). */
export function readTreeCpuSeconds(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + (readCpuSeconds(p) || 0), 0);
}
