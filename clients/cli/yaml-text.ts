/**
 * A YAML writer for the plain JSON-like objects of Kubernetes manifests, so
 * `clipper k8s manifests` needs no YAML package. Block style; a string is
 * written bare only when every YAML 1.1 and 1.2 reader (kubectl's is 1.1)
 * takes it back as that same string, else as a JSON string, which is a
 * valid YAML double-quoted scalar.
 */

/** Values a manifest holds: what JSON can say. */
export type YamlValue = string | number | boolean | null | readonly YamlValue[] | { readonly [key: string]: YamlValue | undefined };

/** Words YAML 1.1 or 1.2 reads as booleans or null. */
const RESERVED = /^(?:true|false|yes|no|on|off|y|n|null|~)$/i;
/** Starts with a letter, '_' or '/', then no spaces, '#', quotes or flow characters; ':' only inside. */
const BARE = /^[A-Za-z_/][A-Za-z0-9_./:-]*$/;

/** One YAML document for `value` (a mapping), ending in a newline. */
export function toYaml(value: { readonly [key: string]: YamlValue | undefined }): string {
  return `${mapping(value, 0).join("\n")}\n`;
}

function scalar(v: string | number | boolean | null): string {
  if (v === null) return "null";
  if (typeof v === "boolean") return String(v);
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new TypeError(`cannot write ${v} in a manifest`);
    return String(v);
  }
  return BARE.test(v) && !v.endsWith(":") && !RESERVED.test(v) ? v : JSON.stringify(v);
}

function isMapping(v: YamlValue): v is { readonly [key: string]: YamlValue | undefined } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isEmpty(v: YamlValue): boolean {
  return Array.isArray(v) ? v.length === 0 : isMapping(v) && Object.values(v).every((x) => x === undefined);
}

function mapping(m: { readonly [key: string]: YamlValue | undefined }, indent: number): string[] {
  const pad = " ".repeat(indent);
  const lines: string[] = [];
  for (const [key, v] of Object.entries(m)) {
    if (v === undefined) continue;
    const k = scalar(key);
    if (typeof v !== "object" || v === null) lines.push(`${pad}${k}: ${scalar(v)}`);
    else if (isEmpty(v)) lines.push(`${pad}${k}: ${Array.isArray(v) ? "[]" : "{}"}`);
    else if (Array.isArray(v)) lines.push(`${pad}${k}:`, ...sequence(v, indent + 2));
    else lines.push(`${pad}${k}:`, ...mapping(v as { readonly [key: string]: YamlValue | undefined }, indent + 2));
  }
  return lines;
}

function sequence(items: readonly YamlValue[], indent: number): string[] {
  const pad = " ".repeat(indent);
  const lines: string[] = [];
  for (const item of items) {
    if (typeof item !== "object" || item === null) lines.push(`${pad}- ${scalar(item)}`);
    // A list in a list is rare in manifests: its JSON is valid YAML flow style.
    else if (isEmpty(item) || Array.isArray(item)) lines.push(`${pad}- ${JSON.stringify(item)}`);
    else {
      const [first, ...rest] = mapping(item as { readonly [key: string]: YamlValue | undefined }, indent + 2);
      lines.push(`${pad}- ${first!.slice(indent + 2)}`, ...rest);
    }
  }
  return lines;
}
