/**
 * Strict reading of Clipper's /admin/* request bodies, with Clipper's error
 * texts (clipper.md §2.1): a required key must be present with the right
 * JSON type. One deliberate leniency: an "int" written as `5.0` is accepted
 * as 5, since JSON.parse cannot tell the two apart and the value is whole.
 */

/** Thrown for a body Clipper would refuse; its message is Clipper's text. */
export class ClipperJsonError extends Error {}

type JsonType = "Null" | "False" | "True" | "Object" | "Array" | "String" | "Number";

function typeName(v: unknown): JsonType {
  if (v === null) return "Null";
  if (v === true) return "True";
  if (v === false) return "False";
  if (Array.isArray(v)) return "Array";
  if (typeof v === "string") return "String";
  if (typeof v === "number") return "Number";
  return "Object";
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** A parsed request body with typed getters that fail with Clipper's messages. */
export class ClipperJson {
  readonly #doc: Record<string, unknown>;
  readonly #schema: string;

  private constructor(doc: Record<string, unknown>, schema: string) {
    this.#doc = doc;
    this.#schema = schema;
  }

  /** Parses `body`; `schema` is the endpoint's hint appended to every error. */
  static parse(body: Buffer, schema: string): ClipperJson {
    let doc: unknown;
    try {
      doc = JSON.parse(body.toString("utf8"));
    } catch (err) {
      throw new ClipperJsonError(formatError(`JSON parse error: ${(err as Error).message}\n`, schema));
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
      throw new ClipperJsonError(formatError(`expected a JSON object but found type ${typeName(doc)}`, schema));
    }
    return new ClipperJson(doc as Record<string, unknown>, schema);
  }

  string(key: string): string {
    return this.#typed(key, "string", (v): v is string => typeof v === "string");
  }

  bool(key: string): boolean {
    return this.#typed(key, "bool", (v): v is boolean => typeof v === "boolean");
  }

  int(key: string): number {
    return this.#typed(key, "int", (v): v is number => typeof v === "number" && Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX);
  }

  stringArray(key: string): string[] {
    const arr = this.#typed(key, "array", (v): v is unknown[] => Array.isArray(v));
    for (const item of arr) {
      if (typeof item !== "string") throw this.#error(`Array input of type ${typeName(item)} is not of type string`);
    }
    return arr as string[];
  }

  #typed<T>(key: string, expected: string, ok: (v: unknown) => v is T): T {
    if (!(key in this.#doc)) throw this.#error(`JSON object does not have required key: ${key}`);
    const v = this.#doc[key];
    // Clipper's text has no space before "but".
    if (!ok(v)) throw this.#error(`Type mismatch! JSON key ${key} expected type ${expected}but found type ${typeName(v)}`);
    return v;
  }

  #error(detail: string): ClipperJsonError {
    return new ClipperJsonError(formatError(detail, this.#schema));
  }
}

function formatError(detail: string, schema: string): string {
  return `Error parsing JSON: ${detail}. Expected JSON schema: ${schema}`;
}
