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

/** Whether a parsed JSON value holds a number JSON cannot write (Infinity from 1e400). */
function hasNonFiniteNumber(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const current = stack.pop();
    if (typeof current === "number") {
      if (!Number.isFinite(current)) return true;
    } else if (current !== null && typeof current === "object") {
      for (const child of Object.values(current)) stack.push(child);
    }
  }
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
