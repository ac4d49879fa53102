// The end of a handler's output, cut to a byte limit at a character boundary: the worker's
// tail of stdout and stderr, and the master's cap on the log_tail a result carries
// (GAFFER_LOG_TAIL_BYTES). A leaf both may import: it imports nothing of ours.

/** Whether `byte` continues a UTF-8 character (10xxxxxx) rather than starting one. */
function continues(byte: number): boolean {
  return (byte & 0xc0) === 0x80;
}

/**
 * The last `limit` bytes of UTF-8 `bytes` as text, from the first whole character on: a
 * character the cut falls inside is left out, never decoded into U+FFFD. At most `limit`
 * bytes; all of `bytes` when they fit.
 */
export function utf8Tail(bytes: Uint8Array, limit: number): string {
  let start = Math.max(0, bytes.length - Math.max(0, limit));
  if (start > 0) while (start < bytes.length && continues(bytes[start] ?? 0)) start += 1;
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, bytes.length - start).toString("utf8");
}
