// JSON answers made of many parts (a batch's jobs, a claim's), joined into one buffer of
// UTF-8 where they are long, each part encoded on its own. A long answer built as one string
// (JSON.stringify's, or `+=` of the parts) is a string of many pieces, which whatever encodes
// it must first copy into one new string, and for half a megabyte that copy cost more than the
// encoding (bench/README.md, "22:58–00:10"). A leaf: it imports nothing.

/** Answers longer than this (in UTF-16 units) go out as UTF-8 bytes; shorter ones as text, written with their headers in one write. */
export const LONG_ANSWER_CHARS = 16_384;

/** `open`, the JSON texts `parts` separated by commas, and `close`: as text when short, else as UTF-8 bytes. */
export function jsonList(open: string, parts: readonly string[], close: string): string | Buffer {
  let chars = open.length + close.length + Math.max(0, parts.length - 1);
  for (const part of parts) chars += part.length;
  return chars > LONG_ANSWER_CHARS ? jsonListBytes(open, parts, close) : `${open}${parts.join(",")}${close}`;
}

/** `open`, the JSON texts `parts` separated by commas, and `close`, as one UTF-8 buffer of exactly their bytes. */
export function jsonListBytes(open: string, parts: readonly string[], close: string): Buffer {
  let size = Buffer.byteLength(open) + Buffer.byteLength(close) + Math.max(0, parts.length - 1);
  for (const part of parts) size += Buffer.byteLength(part);
  const bytes = Buffer.allocUnsafe(size);
  let at = bytes.write(open, 0);
  for (let index = 0; index < parts.length; index++) {
    if (index > 0) bytes[at++] = COMMA;
    at += bytes.write(parts[index] as string, at);
  }
  at += bytes.write(close, at);
  // The buffer is not cleared: every byte of it must be the answer's.
  if (at !== size) throw new Error(`wrote ${at} bytes of an answer counted as ${size}`);
  return bytes;
}

const COMMA = 0x2c;
