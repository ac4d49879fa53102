// Values every store keeps as they were sent. PostgreSQL's text and JSON hold no NUL character
// and no unpaired UTF-16 surrogate, and JSON has no number past ±1.8e308 (JSON.parse makes it
// Infinity, which JSON.stringify writes as null). A client's value holding one is refused here,
// whichever store is below; a worker's report is cleaned instead (see cleanText).

export const UNSTORABLE_TEXT = "strings must not contain NUL or unpaired surrogates";
export const NUMBER_OUT_OF_RANGE = "number out of range";

/** Whether every store keeps this text as it is. */
export function isStorableText(text: string): boolean {
  return !text.includes("\u0000") && text.isWellFormed();
}

const BACKSLASH = 0x5c;

/**
 * Whether a JSON text written by JSON.stringify holds a NUL or an unpaired surrogate, in a key
 * or a value. JSON.stringify writes both, and only them and the other control characters, as
 * `\uXXXX` (lowercase hex); every other character stays raw. A `\u` preceded by an odd number of
 * backslashes is such an escape; an even number is an escaped backslash and the letter u.
 */
export function jsonHasUnstorableText(json: string): boolean {
  for (let at = json.indexOf("\\u"); at !== -1; at = json.indexOf("\\u", at + 2)) {
    let backslashes = 1;
    while (json.charCodeAt(at - backslashes) === BACKSLASH) backslashes += 1;
    if (backslashes % 2 === 0) continue;
    // \udXXX: a lone surrogate (paired ones stay raw); \u0000: NUL.
    if (json.charCodeAt(at + 2) === 0x64 || json.startsWith("0000", at + 2)) return true;
  }
  return false;
}

/**
 * Whether a parsed JSON value holds a number JSON cannot write (Infinity from 1e400). Recursive:
 * a body is nested at most 64 levels deep (route.ts refuses deeper ones before this runs).
 */
function hasNonFiniteNumber(value: unknown): boolean {
  if (typeof value === "number") return !Number.isFinite(value);
  if (value === null || typeof value !== "object") return false;
  if (Array.isArray(value)) {
    for (const item of value as unknown[]) if (hasNonFiniteNumber(item)) return true;
    return false;
  }
  // for…in, not Object.values: no array made per object. JSON.parse makes plain objects, whose
  // prototype has no enumerable keys, and an own "__proto__" key reads as its own value.
  for (const key in value) if (hasNonFiniteNumber((value as Record<string, unknown>)[key])) return true;
  return false;
}

/**
 * What in a submitted JSON value a store would not keep as sent, given the value and its JSON
 * text (made once by the caller): undefined when nothing. The text is scanned, not the value
 * walked; the value is walked for an out-of-range number only when the text holds a `null`,
 * which is how JSON.stringify wrote it.
 */
export function unstorableJson(value: unknown, json: string): string | undefined {
  if (jsonHasUnstorableText(json)) return UNSTORABLE_TEXT;
  if (json.includes("null") && hasNonFiniteNumber(value)) return NUMBER_OUT_OF_RANGE;
  return undefined;
}

/**
 * A worker's text (an error message, a log tail, a progress message) as every store keeps it:
 * NUL characters dropped, unpaired surrogates replaced by U+FFFD. A report is never refused for
 * what a handler printed: refused, its job would run again once its lease ended.
 */
export function cleanText(text: string): string {
  if (isStorableText(text)) return text;
  return text.replaceAll("\u0000", "").toWellFormed();
}
