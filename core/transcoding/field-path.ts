import type { DescField, DescMessage } from "@bufbuild/protobuf";

/** Per message: its fields by proto name and by JSON name (built on first use, kept for the process). */
const fieldIndexes = new WeakMap<DescMessage, ReadonlyMap<string, DescField>>();

/**
 * Finds a field of `message` by its proto name (`model_name`) or its JSON
 * name (`modelName`), the two spellings protobuf JSON accepts.
 *
 * @internal
 */
export function findField(message: DescMessage, name: string): DescField | undefined {
  let index = fieldIndexes.get(message);
  if (index === undefined) {
    const m = new Map<string, DescField>();
    for (const f of message.fields) {
      m.set(f.name, f);
      m.set(f.jsonName, f);
    }
    index = m;
    fieldIndexes.set(message, index);
  }
  return index.get(name);
}

/**
 * Resolves a dotted field path (`sub.field`) to the fields along it. Every
 * field but the last must be a singular message field. Returns a reason
 * string instead of throwing: query parameter names are untrusted input.
 *
 * @internal
 */
export function resolveFieldPath(message: DescMessage, path: string): { ok: true; fields: DescField[] } | { ok: false; error: string } {
  const fields: DescField[] = [];
  let current: DescMessage | undefined = message;
  for (const name of path.split(".")) {
    if (current === undefined) {
      return { ok: false, error: `'${path}': '${fields[fields.length - 1]!.name}' is not a singular message field` };
    }
    const field = findField(current, name);
    if (field === undefined) return { ok: false, error: `'${path}': ${current.typeName} has no field '${name}'` };
    fields.push(field);
    current = field.fieldKind === "message" ? field.message : undefined;
  }
  return { ok: true, fields };
}
