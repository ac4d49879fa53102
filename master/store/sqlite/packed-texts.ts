// Long texts that one statement writes into many rows (a batch's results, its log tails),
// bound as one BLOB beside the statement's JSON list instead of inside it. Inside the list
// each text is escaped by JSON.stringify, parsed by json_each and unescaped by `->>`;
// packed, it is copied as its UTF-8 bytes and read back with substr(), which counts a
// BLOB's bytes. The row holds the same bytes either way for well-formed text, which is what
// reaches here: results are JSON.stringify's (it escapes a lone surrogate), and log tails are
// made well-formed by the HTTP layer (cleanText). Packed, a lone surrogate would become U+FFFD.
import { sql, type RawBuilder } from "kysely";
import { param } from "./database.js";

/**
 * From this many characters a text on average, a list's texts are packed; below it the
 * BLOB's substr() and CAST cost more than the escaping they save (bench/README.md,
 * "22:58–00:10").
 */
export const PACK_FROM_CHARS = 128;

/** A row of such a statement's list: a job's id and attempt. */
export interface TextRow {
  id: string;
  attempt: number;
}

/**
 * The JSON list of `rows` for the statement's json_each, with each row's text of `texts`
 * (aligned with `rows`; null for none): inside the list under `key` while they are short on
 * average, else packed into `blob` with each row's place in it as `from` (counted from 1, as
 * substr() counts) and `bytes` (both null for a null text).
 */
export function textList(rows: readonly TextRow[], texts: readonly (string | null)[], key: string): { list: string; blob: Buffer | null } {
  if (!worthPacking(texts)) {
    return { list: JSON.stringify(rows.map((row, index) => ({ id: row.id, attempt: row.attempt, [key]: texts[index] ?? null }))), blob: null };
  }
  const { blob, from, bytes } = packTexts(texts);
  return { list: JSON.stringify(rows.map((row, index) => ({ id: row.id, attempt: row.attempt, from: from[index], bytes: bytes[index] }))), blob };
}

/** Whether `texts` are long enough on average to be packed (a null counts as the 4 characters of `null` in the list). */
export function worthPacking(texts: readonly (string | null)[]): boolean {
  let chars = 0;
  for (const text of texts) chars += text === null ? 4 : text.length;
  return texts.length > 0 && chars >= PACK_FROM_CHARS * texts.length;
}

/** `texts` in one BLOB, and where each is in it: `from` (counted from 1) and `bytes`; null for a null text. */
export function packTexts(texts: readonly (string | null)[]): { blob: Buffer; from: (number | null)[]; bytes: (number | null)[] } {
  let size = 0;
  for (const text of texts) if (text !== null) size += Buffer.byteLength(text);
  const blob = Buffer.allocUnsafe(size);
  const from = new Array<number | null>(texts.length);
  const bytes = new Array<number | null>(texts.length);
  let offset = 0;
  for (let index = 0; index < texts.length; index++) {
    const text = texts[index] ?? null;
    if (text === null) {
      from[index] = null;
      bytes[index] = null;
      continue;
    }
    const written = blob.write(text, offset);
    from[index] = offset + 1;
    bytes[index] = written;
    offset += written;
  }
  // The buffer is not cleared: every byte of it must be a text's.
  if (offset !== size) throw new Error(`packed ${offset} bytes of texts counted as ${size}`);
  return { blob, from, bytes };
}

/** A packed row's text, as TEXT: its bytes in the BLOB bound as `blob`, at the `from` and `bytes` of its json_each row `done`; NULL for a null text. */
export function unpackedText(blob: string): RawBuilder<string | null> {
  return sql<string | null>`CAST(substr(${param(blob)}, done.value ->> 'from', done.value ->> 'bytes') AS TEXT)`;
}
