/**
 * The one rule for model names, versions and labels: Clipper joins them
 * into Redis keys with ',' and ':' (core/redis-layout.ts), so a name holding
 * either would read back as different parts.
 */
import { PROHIBITED_CHARS } from "./redis-layout.js";

/** True when `value` holds one of Clipper's key separators. */
export function hasKeySeparator(value: string): boolean {
  return PROHIBITED_CHARS.some((c) => value.includes(c));
}

/**
 * Why `value` cannot be a model name or version, as text that starts with
 * `what` ("model name", "model version"), or null when it can be one.
 */
export function modelNameProblem(what: string, value: string): string | null {
  if (value === "") return `${what} must not be empty`;
  if (hasKeySeparator(value)) return `${what} '${value}' must not contain ',' or ':' (Clipper uses them as key separators)`;
  return null;
}
