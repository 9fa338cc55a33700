/**
 * Clipper's five input types: their canonical Redis spellings, the aliases
 * Clipper accepts, and the numeric data types of its RPC protocol
 * (clipper.md §3.2, §4.1).
 */

/** Canonical spelling, as stored in Redis (`get_readable_input_type`). */
export type InputType = "bytes" | "integers" | "floats" | "doubles" | "strings";

const INPUT_TYPES: readonly InputType[] = ["bytes", "integers", "floats", "doubles", "strings"];

/**
 * Every spelling Clipper's `parse_input_type` accepts. Matching is done on
 * the trimmed, lower-cased text, as Clipper's Python containers do, so that
 * "Doubles" is accepted rather than refused for its capital letter.
 */
const ALIASES: ReadonlyMap<string, InputType> = new Map<string, InputType>([
  ["bytes", "bytes"], ["byte", "bytes"], ["b", "bytes"],
  ["integers", "integers"], ["ints", "integers"], ["integer", "integers"], ["int", "integers"], ["i", "integers"],
  ["floats", "floats"], ["float", "floats"], ["f", "floats"],
  ["doubles", "doubles"], ["double", "doubles"], ["d", "doubles"],
  ["strings", "strings"], ["string", "strings"], ["str", "strings"], ["strs", "strings"], ["s", "strings"],
]);

/** Numeric data type of Clipper's RPC (`DataType`): Bytes 0 … Strings 4. */
export const DATA_TYPE_CODE: Readonly<Record<InputType, number>> = {
  bytes: 0,
  integers: 1,
  floats: 2,
  doubles: 3,
  strings: 4,
};

const BY_CODE: readonly InputType[] = ["bytes", "integers", "floats", "doubles", "strings"];

/** Parses any accepted spelling into the canonical one; null when unknown. */
export function parseInputType(text: string): InputType | null {
  return ALIASES.get(text.trim().toLowerCase()) ?? null;
}

/** The input type for an RPC data-type code; null when out of range. */
export function inputTypeFromCode(code: number): InputType | null {
  return Number.isInteger(code) ? (BY_CODE[code] ?? null) : null;
}

/** A message naming every accepted spelling, for errors users can act on. */
export function unknownInputTypeMessage(text: string): string {
  return `'${text}' is not a valid input type; use one of ${INPUT_TYPES.join(", ")} (or a Clipper alias such as ints, double, str)`;
}
