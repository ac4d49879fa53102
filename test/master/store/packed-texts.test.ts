// A statement's texts inside its JSON list while short, packed into one BLOB when long: where
// the line falls, and the places that let each row find its own bytes again.
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { PACK_FROM_CHARS, packTexts, textList, worthPacking } from "../../../master/store/sqlite/packed-texts.js";

describe("packed texts", () => {
  it("packs texts from PACK_FROM_CHARS characters on average, a null counting as 4, never an empty list", () => {
    expect(worthPacking(["x".repeat(PACK_FROM_CHARS)])).toBe(true);
    expect(worthPacking(["x".repeat(PACK_FROM_CHARS - 1)])).toBe(false);
    expect(worthPacking(["x".repeat(2 * PACK_FROM_CHARS - 4), null])).toBe(true);
    expect(worthPacking(["x".repeat(2 * PACK_FROM_CHARS - 5), null])).toBe(false);
    expect(worthPacking([])).toBe(false);
  });

  it("puts each text at its place in the BLOB, in bytes counted from 1, null and empty texts too", () => {
    const texts = ["é", null, "", "雪😀", "plain"];
    const { blob, from, bytes } = packTexts(texts);
    expect(blob.toString()).toBe("é雪😀plain");
    expect(from).toEqual([1, null, 3, 3, 10]);
    expect(bytes).toEqual([2, null, 0, 7, 5]);
  });

  it("gives the list with the texts inside when short and their places when long, and SQLite reads each back", () => {
    const rows = [{ id: "a", attempt: 1 }, { id: "b", attempt: 2 }, { id: "c", attempt: 1 }];
    const short = textList(rows, ['{"n":1}', null, '"é"'], "result");
    expect(short.blob).toBeNull();
    expect(JSON.parse(short.list)).toEqual([{ id: "a", attempt: 1, result: '{"n":1}' }, { id: "b", attempt: 2, result: null }, { id: "c", attempt: 1, result: '"é"' }]);
    const long = ["雪😀 ".repeat(100), null, "line\nfeed ".repeat(30)];
    const packed = textList(rows, long, "result");
    expect(packed.blob).not.toBeNull();
    const db = new Database(":memory:");
    try {
      const read = db
        .prepare(
          "SELECT done.value ->> 'id' AS id, CAST(substr(:blob, done.value ->> 'from', done.value ->> 'bytes') AS TEXT) AS text FROM json_each(:list) AS done ORDER BY done.key",
        )
        .all({ blob: packed.blob, list: packed.list });
      expect(read).toEqual([{ id: "a", text: long[0] }, { id: "b", text: null }, { id: "c", text: long[2] }]);
    } finally {
      db.close();
    }
  });
});
