/**
 * The clipper-ts release a process runs, as package.json states it: the
 * one home of the version, read once. Found by walking up from this module,
 * which sits at a different depth in the sources (core/) and in the build
 * (dist/core/).
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** What is reported when no package.json of clipper-ts is found (a copied-out build). */
const UNKNOWN = "unknown";

let cached: string | null = null;

/** The version in clipper-ts's package.json, or "unknown". */
export function releaseVersion(): string {
  cached ??= find();
  return cached;
}

function find(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown; version?: unknown };
      if (pkg.name === "clipper-ts" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // No (readable) package.json here: look further up.
    }
    const up = dirname(dir);
    if (up === dir) return UNKNOWN;
    dir = up;
  }
}
