// buf breaking against the previous commit: HEAD when proto/ has uncommitted
// changes, else HEAD~1. The old contracts import google/api and google/rpc
// from third_party/, which is generated and never committed, so the old
// proto/ is checked out into a temp workspace beside today's third_party/.
// Skips (exit 0) when there is no earlier commit with contracts, e.g. the
// first commit or a shallow clone.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
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
const old = mkdtempSync(join(tmpdir(), "clipper-breaking-"));
try {
  execFileSync("sh", ["-c", `git archive ${ref} proto | tar -x -C "${old}"`], { cwd: root, stdio: "inherit" });
  cpSync(join(root, "third_party"), join(old, "third_party"), { recursive: true });
  cpSync(join(root, "buf.yaml"), join(old, "buf.yaml"));
  execFileSync(join(root, "node_modules", ".bin", "buf"), ["breaking", "--against", old], { cwd: root, stdio: "inherit" });
  console.log(`buf breaking: no breaking change against ${ref}`);
} catch {
  console.error(`buf breaking: the contracts break compatibility with ${ref} (see above)`);
  process.exitCode = 1;
} finally {
  rmSync(old, { recursive: true, force: true });
}
