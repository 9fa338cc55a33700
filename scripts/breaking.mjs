// buf breaking against the previous commit: HEAD when proto/ has uncommitted
// changes, else HEAD~1. Skips (exit 0) when there is no earlier commit with
// contracts to compare with, e.g. the first commit or a shallow clone.
import { execFileSync, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const git = (...args) => spawnSync("git", args, { cwd: root, encoding: "utf8" });

const dirty = git("diff", "--quiet", "HEAD", "--", "proto").status === 1;
const ref = dirty ? "HEAD" : "HEAD~1";
if (git("cat-file", "-e", `${ref}:proto`).status !== 0) {
  console.log(`buf breaking: skipped, ${ref} has no proto/ to compare with`);
  process.exit(0);
}
execFileSync(join(root, "node_modules", ".bin", "buf"), ["breaking", "proto", "--against", `.git#ref=${ref},subdir=proto`], {
  cwd: root,
  stdio: "inherit",
});
console.log(`buf breaking: no breaking change against ${ref}`);
