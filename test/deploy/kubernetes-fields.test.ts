/**
 * Field names: kubernetes-models' validate() accepts fields the API does
 * not have (a misspelt `readinesProbe` would pass it and be dropped by the
 * API server). Declaring every object as a typed literal and running the
 * TypeScript compiler on it catches them, as excess properties.
 */
import test from "ava";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BASE_DIR, generatedObject, parseManifests, readKustomization, readManifests, typedLiterals, yamlFiles, type K8sObject } from "../helpers/kubernetes.js";
import { ROOT } from "../helpers/processes.js";

function run(file: string, args: readonly string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: ROOT, timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, out: stdout + stderr }));
  });
}

/** Compiler errors for the objects, as "o<i>: message" lines; [] when every field is known. */
async function unknownFields(objects: readonly K8sObject[]): Promise<string[]> {
  mkdirSync(join(ROOT, ".build"), { recursive: true });
  const dir = mkdtempSync(join(ROOT, ".build", "k8s-fields-"));
  try {
    const file = join(dir, "objects.ts");
    writeFileSync(file, typedLiterals(objects));
    const r = await run(join(ROOT, "node_modules/.bin/tsc"), ["--ignoreConfig", "--noEmit", "--strict", "--skipLibCheck", "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler", "--types", "", file]);
    if (r.code === 0) return [];
    const errors = r.out.split("\n").filter((l) => /error TS/.test(l));
    if (errors.length === 0) throw new Error(`tsc failed without errors: ${r.out}`);
    return errors;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function everyObject(): K8sObject[] {
  const files = [
    ...yamlFiles(BASE_DIR).filter((f) => f !== "kustomization.yaml"),
    ...yamlFiles(join(BASE_DIR, "dev")).map((f) => `dev/${f}`),
    ...yamlFiles(join(BASE_DIR, "templates")).map((f) => `templates/${f}`),
  ];
  return [...files.flatMap((f) => readManifests(join(BASE_DIR, f))), ...readKustomization().generated.map((g) => generatedObject(g, () => "x"))];
}

test("every field of every manifest is one the Kubernetes API has", async (t) => {
  const objects = everyObject();
  t.true(objects.length >= 20, `${objects.length} objects`);
  t.deepEqual(await unknownFields(objects), []);
});

test("the field check bites: a misspelt field and a field at the wrong level are named", async (t) => {
  // The compiler names the first unknown field of each object: one per object here.
  const [misspelt, misplaced] = parseManifests(
    [
      "apiVersion: apps/v1",
      "kind: Deployment",
      "metadata: {name: x}",
      "spec:",
      "  selector: {matchLabels: {a: b}}",
      "  template:",
      "    metadata: {labels: {a: b}}",
      "    spec:",
      "      containers:",
      "        - name: c",
      "          image: i",
      "          readinesProbe: {httpGet: {path: /readyz, port: 80}}",
      "---",
      "apiVersion: v1",
      "kind: Service",
      "metadata: {name: x}",
      "spec:",
      "  ports: [{port: 80}]",
      "  terminationGracePeriod: 30",
    ].join("\n"),
    "test",
  );
  const errors = (await unknownFields([misspelt!, misplaced!])).join("\n");
  t.regex(errors, /readinesProbe/);
  t.regex(errors, /terminationGracePeriod/);
});
