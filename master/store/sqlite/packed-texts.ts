// Long texts that one statement writes into many rows (a batch's results, its log tails),
// bound as one BLOB beside the statement's JSON list instead of inside it. Inside the list
// each text is escaped by JSON.stringify, parsed by json_each and unescaped by `->>`;
// packed, it is copied as its UTF-8 bytes and read back with substr(), which counts a
// BLOB's bytes. The row holds exactly the bytes of the text either way.
import { sql, type RawBuilder } from "kysely";
import { param } from "./database.js";

/**
 * From this many characters a text on average, a list's texts are packed. Below it the
 * BLOB's substr() and CAST cost more than the escaping they save (a batch of 200 results
 * in better-sqlite3: null results 2.1 µs a job inside the list, 2.5 packed; 1 KB results
 * 20–21 inside, 12–15 packed; 4 KB 66–72 inside, 38–41 packed).
 */
export const PACK_FROM_CHARS = 128;

/** Whether `texts` are long enough on average to be packed. */
export function worthPacking(texts: readonly (string | null)[]): boolean {
  let chars = 0;
  for (const text of texts) chars += text === null ? 4 : text.length;
  return chars >= PACK_FROM_CHARS * texts.length;
}

/** `texts` in one BLOB, and where each is in it: `at` (from 1, as substr() counts) and `bytes`; null for a null text. */
export function packTexts(texts: readonly (string | null)[]): { blob: Buffer; at: (number | null)[]; bytes: (number | null)[] } {
  let size = 0;
  for (const text of texts) if (text !== null) size += Buffer.byteLength(text);
  const blob = Buffer.allocUnsafe(size);
  const at = new Array<number | null>(texts.length);
  const bytes = new Array<number | null>(texts.length);
  let offset = 0;
  for (let index = 0; index < texts.length; index++) {
    const text = texts[index] ?? null;
    if (text === null) {
      at[index] = null;
      bytes[index] = null;
      continue;
    }
    const written = blob.write(text, offset);
    at[index] = offset + 1;
    bytes[index] = written;
    offset += written;
  }
  return { blob, at, bytes };
}

/**
 * The text at `at` for `bytes` in the BLOB bound as `blob` (SQL expressions of a
 * json_each row, say), as TEXT; NULL where `at` is NULL.
 */
export function unpackedText(blob: string, at: RawBuilder<unknown>, bytes: RawBuilder<unknown>): RawBuilder<string | null> {
  return sql<string | null>`CAST(substr(${param(blob)}, ${at}, ${bytes}) AS TEXT)`;
}
