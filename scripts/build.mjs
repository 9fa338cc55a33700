// Compiles the runtime code (tsconfig.build.json) into dist/ and puts next
// to it what that code reads relative to its own file, so bin/ can run it
// without tsx (bin/launch.js). `npm ci` runs it after gen through
// "prepare"; `--if-stale` skips it when dist/ is already fresh.
//
// It emits without type checking (--noCheck), exactly what tsx would run:
// checking is `npm run typecheck`'s job, and a type error being fixed in
// one file must not hold up every process started meanwhile.
//
// Each build writes into its own folder under .build/ and then swaps it
// for dist/, so two builds at once, or a process starting during one, never
// see a half-written dist/: the launcher finds either a complete build with
// its stamp, or no dist/ (and runs the sources).
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, renameSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { distIsFresh, STAMP } from "../bin/launch.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

if (process.argv.includes("--if-stale") && distIsFresh(root)) process.exit(0);

/** Files runtime code reads through `new URL(…, import.meta.url)`: [source, path under dist/]. */
const ASSETS = [
  // core/descriptor-set.ts (reflection and transcoding)
  ["gen/descriptors.binpb", "gen/descriptors.binpb"],
];

/**
 * management/worker-spec.ts spawns ../bin/clipper-worker.js and clients/cli/up.ts
 * <root>/bin/*.js, which from dist/ means dist/bin/: forward to the real
 * launchers, so a process started from there checks freshness again.
 */
const BINS = ["clipper", "clipper-gateway", "clipper-management", "clipper-worker"];

const started = Date.now();
const out = join(root, ".build", String(process.pid));
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
// The stamp's mtime is taken now, before the compiler reads any source.
writeFileSync(join(out, basename(STAMP)), `${new Date().toISOString()}\n`);

const tsc = join(root, "node_modules", ".bin", "tsc");
try {
  execFileSync(tsc, ["-p", "tsconfig.build.json", "--noCheck", "--outDir", out], { cwd: root, stdio: "inherit" });
} catch {
  rmSync(out, { recursive: true, force: true });
  console.error("build: tsc failed; dist/ left as it was (the bins run the sources while it is stale)");
  process.exit(1);
}
try {
  for (const [from, to] of ASSETS) {
    mkdirSync(dirname(join(out, to)), { recursive: true });
    copyFileSync(join(root, from), join(out, to));
  }
  mkdirSync(join(out, "bin"), { recursive: true });
  for (const name of BINS) writeFileSync(join(out, "bin", `${name}.js`), `import "../../bin/${name}.js";\n`);
} catch (err) {
  rmSync(out, { recursive: true, force: true });
  console.error(`build: ${err.message}; dist/ left as it was`);
  process.exit(1);
}

const dist = join(root, dirname(STAMP));
const old = join(root, ".build", `old-${process.pid}`);
// Another build may swap its output in between our two renames: retry.
for (let attempt = 0; ; attempt++) {
  try {
    renameSync(dist, old);
  } catch (err) {
    if (err.code !== "ENOENT") throw err;
  }
  try {
    renameSync(out, dist);
    break;
  } catch (err) {
    if ((err.code !== "ENOTEMPTY" && err.code !== "EEXIST") || attempt >= 5) throw err;
  }
}
rmSync(old, { recursive: true, force: true });
try {
  rmdirSync(join(root, ".build"));
} catch {
  // Another build is still using it.
}
console.log(`build: dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
