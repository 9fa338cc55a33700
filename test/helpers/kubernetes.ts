/**
 * Reading deploy/kubernetes/ as kubectl and kustomize would, without them:
 * the kustomization, every manifest (npm `yaml`), each object checked
 * against Kubernetes' schemas (npm `kubernetes-models`), and the Secrets
 * and ConfigMaps its generators would make.
 */
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { ROOT } from "./processes.js";

export const BASE_DIR = join(ROOT, "deploy/kubernetes");

/** A Kubernetes object as parsed; the tests look into it freely. */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: any; [k: string]: any };

/** One generated Secret or ConfigMap: its name, type, and data keys → source file (relative to the base). */
export interface Generated {
  readonly kind: "Secret" | "ConfigMap";
  readonly name: string;
  readonly type?: string;
  readonly files: ReadonlyMap<string, string>;
}

export interface Kustomization {
  readonly resources: readonly string[];
  readonly generated: readonly Generated[];
  readonly raw: any;
}

/** The YAML files directly in `dir` (the flat base), by file name. */
export function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => e.name)
    .sort();
}

/** Every document of a YAML stream; a syntax error or warning throws, naming the file. */
export function parseManifests(text: string, where: string): K8sObject[] {
  const docs = parseAllDocuments(text);
  const out: K8sObject[] = [];
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) throw new Error(`${where}: ${problems.map((p) => p.message).join("; ")}`);
    const value = doc.toJS() as K8sObject | null;
    if (value !== null) out.push(value);
  }
  return out;
}

export function readManifests(path: string): K8sObject[] {
  return parseManifests(readFileSync(path, "utf8"), relative(ROOT, path));
}

/** kustomization.yaml of `dir`: its resources and what its generators make. */
export function readKustomization(dir: string = BASE_DIR): Kustomization {
  const raw = parseYaml(readFileSync(join(dir, "kustomization.yaml"), "utf8"));
  const gen = (kind: "Secret" | "ConfigMap", list: unknown): Generated[] =>
    ((list ?? []) as { name: string; type?: string; files?: string[] }[]).map((g) => ({
      kind,
      name: g.name,
      ...(g.type === undefined ? {} : { type: g.type }),
      files: new Map(
        (g.files ?? []).map((f) => {
          const eq = f.indexOf("=");
          return eq === -1 ? [f.split("/").pop()!, f] : [f.slice(0, eq), f.slice(eq + 1)];
        }),
      ),
    }));
  return { resources: raw.resources ?? [], generated: [...gen("Secret", raw.secretGenerator), ...gen("ConfigMap", raw.configMapGenerator)], raw };
}

/** The Secret or ConfigMap object a generator would make, with `read(file)` as each key's content. */
export function generatedObject(g: Generated, read: (file: string) => string): K8sObject {
  const data = Object.fromEntries([...g.files].map(([key, file]) => [key, Buffer.from(read(file)).toString("base64")]));
  return { apiVersion: "v1", kind: g.kind, metadata: { name: g.name }, ...(g.type === undefined ? {} : { type: g.type }), data };
}

const require = createRequire(import.meta.url);

/**
 * Checks `obj` against the schema of its apiVersion and kind (kubernetes-models'
 * validate()); throws naming the object and the first violations. An unknown
 * apiVersion/kind throws too.
 */
export function validateObject(obj: K8sObject): void {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
  const dir = group === "" ? version : `${group}/${version}`;
  let Model: new (o: unknown) => { validate(): void };
  try {
    Model = (require(`kubernetes-models/${dir}/${obj.kind}`) as Record<string, new (o: unknown) => { validate(): void }>)[obj.kind]!;
  } catch {
    throw new Error(`${obj.kind} ${obj.metadata?.name}: no schema for ${obj.apiVersion} ${obj.kind}`);
  }
  try {
    new Model(obj).validate();
  } catch (err) {
    throw new Error(`${obj.kind} ${obj.metadata?.name}: ${(err as Error).message}`);
  }
}

/** The pod template of a workload, or null for other kinds. */
export function podTemplate(obj: K8sObject): { metadata: { labels: Record<string, string> }; spec: any } | null {
  return ["Deployment", "StatefulSet", "DaemonSet"].includes(obj.kind) ? obj.spec.template : null;
}

/**
 * The file a container path points into through a volume mount: the
 * volume's Secret or ConfigMap name and the key whose content is there,
 * or null when the path is under no mount.
 */
export function mountedKey(pod: ReturnType<typeof podTemplate> & object, container: { volumeMounts?: { name: string; mountPath: string }[] }, path: string): { kind: "Secret" | "ConfigMap"; name: string; key: string } | null {
  for (const m of container.volumeMounts ?? []) {
    if (!path.startsWith(`${m.mountPath}/`)) continue;
    const file = path.slice(m.mountPath.length + 1);
    const volume = (pod.spec.volumes as any[]).find((v) => v.name === m.name);
    const source = volume?.secret ?? volume?.configMap;
    if (source === undefined) return null;
    const items = source.items as { key: string; path: string }[] | undefined;
    const key = items === undefined ? file : (items.find((i) => i.path === file)?.key ?? `(no item for ${file})`);
    return volume.secret !== undefined ? { kind: "Secret", name: source.secretName, key } : { kind: "ConfigMap", name: source.name, key };
  }
  return null;
}

/**
 * TypeScript that declares each object as a literal of its kubernetes-models
 * interface (`const o3: IDeployment = {…}`). The compiler's excess-property
 * check then names every field the API does not have, which validate()
 * lets pass. Object `i` is declared as `o<i>`.
 */
export function typedLiterals(objects: readonly K8sObject[]): string {
  const lines: string[] = [];
  objects.forEach((obj, i) => {
    const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
    const dir = group === "" ? version : `${group}/${version}`;
    lines.push(`import type { I${obj.kind} as T${i} } from "kubernetes-models/${dir}/${obj.kind}";`, `export const o${i}: T${i} = ${JSON.stringify(obj, null, 1)};`);
  });
  return `${lines.join("\n")}\n`;
}
