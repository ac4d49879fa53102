// The SQLite connection's multi-row inserter: rows in statements of up to a hundred, each
// row's values in column order, every row written once.
import { describe, expect, it } from "vitest";
import { SqliteDatabase } from "../../../master/store/sqlite/database.js";

describe("rowInserter", () => {
  it("writes every row, in order, across statements of a hundred rows", () => {
    const db = new SqliteDatabase({ path: ":memory:" });
    try {
      db.sqlite.exec("CREATE TABLE t (n INTEGER PRIMARY KEY, label TEXT NOT NULL, extra TEXT)");
      const insert = db.rowInserter("t", ["n", "label", "extra"]);
      const rows = Array.from({ length: 250 }, (_, n) => [n, `row ${n}`, n % 2 === 0 ? null : "odd"]);
      db.transaction(() => insert(rows));
      insert([]);
      const read = db.sqlite.prepare("SELECT n, label, extra FROM t ORDER BY n").raw(true).all();
      expect(read).toEqual(rows);
    } finally {
      db.sqlite.close();
    }
  });
});
