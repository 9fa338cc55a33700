/**
 * The worker port's Unix domain socket (--rpc-ipc-dir): workers on the
 * gateway's own host reach it through `ipc://DIR/rpc-<i>.sock` without the
 * TCP loopback stack. Who may connect is decided by the file system, so
 * the directory must be this user's alone: absolute, a directory, owned by
 * this user, writable by nobody else (created 0700 when missing); the
 * socket is made 0600 as soon as it exists.
 *
 * libzmq unlinks whatever file sits at the path when it binds, so binding
 * over a live gateway's socket would silently take its workers: before
 * binding, a socket that still accepts a connection is refused, and only
 * a dead one is removed. On close the file is removed if it is still the
 * one this gateway bound.
 */
import { chmod, lstat, mkdir, stat, unlink } from "node:fs/promises";
import { connect } from "node:net";
import { isAbsolute, join } from "node:path";
import { decoded, undecodable, type Decoded } from "../../core/decoded.js";
import { ipcAddress, ipcPathProblem } from "../../core/worker-endpoint.js";

/** Longest wait for a connection to an existing socket file, in ms: a live gateway accepts at once, however busy its event loop. */
const PROBE_TIMEOUT_MS = 2_000;

/** The socket of process `index` in `dir` (one per process of --processes). */
export function ipcSocketPath(dir: string, index: number): Decoded<string> {
  const path = join(dir, `rpc-${index}.sock`);
  const problem = ipcPathProblem(path);
  return problem === null ? decoded(path) : undecodable(`--rpc-ipc-dir: ${problem}`);
}

/**
 * Checks --rpc-ipc-dir, creating it (mode 0700) when missing, and the
 * socket paths of processes `0..count-1` in it; the paths, or why not.
 */
export async function prepareIpcDir(dir: string, count: number): Promise<Decoded<string[]>> {
  if (!isAbsolute(dir)) return undecodable(`--rpc-ipc-dir must be an absolute path, got '${dir}'`);
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const path = ipcSocketPath(dir, i);
    if (!path.ok) return path;
    paths.push(path.value);
  }
  try {
    // recursive: an existing directory is no error; what it is gets checked below.
    const created = await mkdir(dir, { recursive: true, mode: 0o700 });
    // The mode given to mkdir passes through the umask; the directory must be 0700 whatever it is.
    if (created !== undefined) await chmod(dir, 0o700);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EEXIST" && code !== "ENOTDIR") return undecodable(`--rpc-ipc-dir: cannot create ${dir}: ${(err as Error).message}`);
  }
  let s;
  try {
    s = await stat(dir);
  } catch (err) {
    return undecodable(`--rpc-ipc-dir: ${dir}: ${(err as Error).message}`);
  }
  if (!s.isDirectory()) return undecodable(`--rpc-ipc-dir: ${dir} exists and is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && s.uid !== uid) {
    return undecodable(`--rpc-ipc-dir: ${dir} is owned by uid ${s.uid}, not by this user (uid ${uid}): whoever owns it could replace the socket`);
  }
  if ((s.mode & 0o022) !== 0) {
    return undecodable(
      `--rpc-ipc-dir: ${dir} is writable by its group or others (mode ${(s.mode & 0o777).toString(8).padStart(4, "0")}): they could replace the socket; chmod go-w it, or use a directory of your own`,
    );
  }
  return decoded(paths);
}

/**
 * Makes `path` free to bind: nothing there, or a dead socket, removed (then
 * the value is true). A socket that accepts a connection belongs to a
 * running gateway, and anything that is not a socket is not ours to
 * delete: both are errors.
 */
export async function claimIpcPath(path: string): Promise<Decoded<boolean>> {
  let s;
  try {
    s = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return decoded(false);
    return undecodable(`cannot inspect ${path}: ${(err as Error).message}`);
  }
  if (!s.isSocket()) return undecodable(`${path} exists and is not a socket: remove it, or use another --rpc-ipc-dir`);
  const probe = await probeSocket(path);
  if (probe === "live") return undecodable(`another gateway is listening on ${ipcAddress(path)}: stop it, or use another --rpc-ipc-dir`);
  if (probe !== "dead") return undecodable(`cannot tell whether a gateway is listening on ${ipcAddress(path)} (${probe}); remove the file if none is`);
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") return undecodable(`cannot remove the stale socket ${path}: ${(err as Error).message}`);
  }
  return decoded(true);
}

/**
 * Connects to the socket and hangs up at once: "live" when it accepted,
 * "dead" when nobody listens (ECONNREFUSED) or it is gone, else the error.
 */
function probeSocket(path: string): Promise<"live" | "dead" | string> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    const done = (outcome: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => done("no answer within 2 s"), PROBE_TIMEOUT_MS);
    socket.once("connect", () => done("live"));
    socket.once("error", (err: NodeJS.ErrnoException) => {
      // EAGAIN: the listener's backlog is full, so it is alive.
      if (err.code === "EAGAIN") done("live");
      else done(err.code === "ECONNREFUSED" || err.code === "ENOENT" ? "dead" : (err.code ?? err.message));
    });
  });
}

/** A bound socket file: removed on release if it is still the one bound. */
export interface BoundIpcSocket {
  readonly path: string;
  /** `ipc://<path>`, as workers connect to it. */
  readonly address: string;
  release(): Promise<void>;
}

/**
 * Claims `path` ({@link claimIpcPath}), binds it with `bind` (the ZeroMQ
 * address), and makes the file 0600. Throws with a message for operators
 * when the path is taken.
 */
export async function bindIpcSocket(path: string, bind: (address: string) => Promise<void>): Promise<BoundIpcSocket> {
  const claimed = await claimIpcPath(path);
  if (!claimed.ok) throw new Error(claimed.error);
  const address = ipcAddress(path);
  await bind(address);
  // The directory (0700) already keeps others out; the file's own mode keeps it so if the directory is loosened later.
  await chmod(path, 0o600);
  const { ino } = await stat(path);
  return {
    path,
    address,
    async release() {
      try {
        // A file of the same name but another inode was put there by someone else: not ours to remove.
        if ((await lstat(path)).ino === ino) await unlink(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
    },
  };
}
