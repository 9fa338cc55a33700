/**
 * google.api.http path templates (googleapis google/api/http.proto,
 * "Path template syntax"):
 *
 *     Template = "/" Segments [ ":" Verb ] ;
 *     Segments = Segment { "/" Segment } ;
 *     Segment  = "*" | "**" | LITERAL | Variable ;
 *     Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *
 * Templates are parsed once, when routes are built; matching works on the
 * raw (still percent-encoded) URL path and returns the raw text of each
 * variable, so decoding (and its errors) belong to the request binder.
 */

/** One segment of a compiled template. `rest` is `**`: zero or more segments, always last. */
export type TemplateSegment =
  | { readonly kind: "literal"; readonly value: string }
  | { readonly kind: "any" }
  | { readonly kind: "rest" };

/** A `{field.path=...}` variable: the segments it spans, `end` exclusive (`Infinity` with `**`). */
export interface TemplateVariable {
  readonly fieldPath: string;
  readonly start: number;
  readonly end: number;
  /** True when the variable may span several segments; its value then keeps its '/' separators. */
  readonly multiSegment: boolean;
}

/** A parsed path template. */
export interface PathTemplate {
  /** The template text as written in the annotation. */
  readonly source: string;
  readonly segments: readonly TemplateSegment[];
  readonly variables: readonly TemplateVariable[];
  /** The custom verb after the final ':' (e.g. "predict"), or "" if none. */
  readonly verb: string;
}

const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/**
 * Parses a path template. Throws (at route-building time) with the template
 * text in the message when it is not valid.
 */
export function parsePathTemplate(source: string): PathTemplate {
  const fail = (why: string): never => {
    throw new Error(`invalid path template '${source}': ${why}`);
  };
  if (!source.startsWith("/")) fail("must start with '/'");
  const { path, verb } = splitVerb(source.slice(1), fail);
  const segments: TemplateSegment[] = [];
  const variables: TemplateVariable[] = [];
  for (const part of splitTopLevel(path, fail)) {
    if (part.startsWith("{")) {
      if (!part.endsWith("}")) fail(`a variable must be a whole segment, got '${part}'`);
      const inner = part.slice(1, -1);
      const eq = inner.indexOf("=");
      const fieldPath = eq < 0 ? inner : inner.slice(0, eq);
      if (!FIELD_PATH.test(fieldPath)) fail(`invalid field path '${fieldPath}'`);
      if (variables.some((v) => v.fieldPath === fieldPath)) fail(`field '${fieldPath}' is bound twice`);
      const start = segments.length;
      // {x} is shorthand for {x=*}.
      const body = eq < 0 ? ["*"] : inner.slice(eq + 1).split("/");
      for (const s of body) segments.push(plainSegment(s, fail));
      const rest = segments[segments.length - 1]?.kind === "rest";
      const end = rest ? Infinity : segments.length;
      variables.push({ fieldPath, start, end, multiSegment: rest || end - start > 1 });
    } else {
      segments.push(plainSegment(part, fail));
    }
  }
  const restAt = segments.findIndex((s) => s.kind === "rest");
  if (restAt >= 0 && restAt !== segments.length - 1) fail("'**' must be the last segment");
  return { source, segments, variables, verb };
}

/**
 * Matches a raw URL path (e.g. `URL.pathname`, leading '/', still
 * percent-encoded) against a template. Returns the raw text of each variable
 * in `template.variables` order, or null when the path does not match.
 *
 * It runs for every route tried on every transcoded request, so it walks the
 * path in place: no split, and no substring but the captures of a match.
 */
export function matchPathTemplate(template: PathTemplate, pathname: string): string[] | null {
  if (pathname.charCodeAt(0) !== SLASH) return null;
  let end = pathname.length;
  if (template.verb !== "") {
    const verb = template.verb;
    const colon = end - verb.length - 1;
    // "/v1/apps/:predict" has an empty last segment before the verb: no match, as in grpc-gateway.
    if (colon <= 1 || pathname.charCodeAt(colon) !== COLON || pathname.charCodeAt(colon - 1) === SLASH || !pathname.startsWith(verb, colon + 1)) return null;
    end = colon;
  }
  const segs = template.segments;
  const hasRest = segs.length > 0 && segs[segs.length - 1]!.kind === "rest";
  const fixed = hasRest ? segs.length - 1 : segs.length;
  // Segment i of the path runs from starts[i] to the next '/' (or `end`).
  const starts = new Array<number>(fixed + 1);
  let at = 1;
  for (let i = 0; i < fixed; i++) {
    if (at > end) return null; // fewer segments than the template
    const slash = pathname.indexOf("/", at);
    const stop = slash < 0 || slash > end ? end : slash;
    const seg = segs[i]!;
    if (seg.kind === "literal" && (stop - at !== seg.value.length || !pathname.startsWith(seg.value, at))) return null;
    starts[i] = at;
    at = stop + 1;
  }
  // `at` is one past the end exactly when the fixed segments used the whole path.
  if (!hasRest && at !== end + 1) return null;
  starts[fixed] = at;
  const values: string[] = [];
  for (const v of template.variables) {
    const from = starts[v.start]!;
    const to = v.end === Infinity ? end : starts[v.end]! - 1;
    // "/files" against "/files/**": the rest is empty.
    values.push(from > end ? "" : pathname.slice(from, to));
  }
  return values;
}

const SLASH = 0x2f;
const COLON = 0x3a;

function plainSegment(text: string, fail: (why: string) => never): TemplateSegment {
  if (text === "*") return { kind: "any" };
  if (text === "**") return { kind: "rest" };
  if (text === "" || /[{}*=]/.test(text)) fail(`invalid segment '${text}'`);
  return { kind: "literal", value: text };
}

/** Splits off the verb: the text after a ':' that is outside braces and after the last top-level '/'. */
function splitVerb(path: string, fail: (why: string) => never): { path: string; verb: string } {
  let depth = 0;
  let colon = -1;
  for (let i = 0; i < path.length; i++) {
    const c = path[i];
    if (c === "{") depth++;
    else if (c === "}") depth--;
    else if (depth === 0 && c === "/") colon = -1;
    else if (depth === 0 && c === ":" && colon < 0) colon = i;
  }
  if (colon < 0) return { path, verb: "" };
  const verb = path.slice(colon + 1);
  if (verb === "" || /[/{}*]/.test(verb)) fail(`invalid verb '${verb}'`);
  return { path: path.slice(0, colon), verb };
}

/** Splits on '/' outside braces; checks that braces are balanced and not nested. */
function splitTopLevel(path: string, fail: (why: string) => never): string[] {
  const parts: string[] = [];
  let depth = 0;
  let from = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path[i];
    if (c === "{") {
      if (depth > 0) fail("nested variables are not allowed");
      depth++;
    } else if (c === "}") {
      if (depth === 0) fail("unbalanced '}'");
      depth--;
    } else if (c === "/" && depth === 0) {
      parts.push(path.slice(from, i));
      from = i + 1;
    }
  }
  if (depth !== 0) fail("unbalanced '{'");
  parts.push(path.slice(from));
  return parts;
}
