/**
 * Ending with the process that started this one, however it ended. A
 * supervisor that wants no orphans, even when it is killed outright
 * (`clipper up` under kill -9), gives its child a pipe as standard input
 * and keeps the write end without ever writing: the kernel closes that end
 * when the supervisor dies, by any signal, and the child reads end-of-file.
 * A signal could not do this (a killed process sends none), and SIGHUP
 * already means "reload" to a server run on its own.
 *
 * Opt-in (--exit-with-stdin): a server started by hand has a terminal or
 * /dev/null there, whose end-of-file means nothing.
 */
export function watchStdinClose(onClosed: () => void): void {
  let fired = false;
  const fire = (): void => {
    if (fired) return;
    fired = true;
    onClosed();
  };
  // Whatever is written is not a message: only the end of the pipe is.
  process.stdin.on("data", () => {});
  process.stdin.once("end", fire);
  process.stdin.once("close", fire);
  process.stdin.once("error", fire);
  process.stdin.resume();
}
