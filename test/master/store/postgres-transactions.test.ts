// PostgreSQL transactions (PostgresDatabase.transaction): what one marked is sent with NOTIFY
// in the query that commits it (one round trip fewer), heard only once it committed, and a
// transaction undone sends nothing and leaves its connection fit for the next one.
import { sql } from "kysely";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parseNotice, PostgresDatabase, type Tx } from "../../../master/store/postgres/database.js";
import { createTestDatabase, dropTestDatabase } from "../../helpers/postgres.js";
import { dialects } from "../../helpers/store.js";

const postgres = dialects.find((dialect) => dialect.name === "postgres");

describe.skipIf(postgres === undefined)("PostgreSQL transactions", () => {
  let url: string;
  let db: PostgresDatabase;
  let listener: pg.Client;
  let heard: string[];
  /** The queries every pooled connection sent, in order. */
  let sent: string[];

  beforeEach(async () => {
    url = await createTestDatabase();
    db = new PostgresDatabase({ url });
    sent = [];
    db.pool.on("connect", (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        const [first] = args;
        sent.push(typeof first === "string" ? first : String((first as { text?: string }).text));
        return query(...args);
      };
    });
    await db.run(sql`CREATE TABLE t (n integer PRIMARY KEY)`);
    listener = new pg.Client({ connectionString: url });
    await listener.connect();
    heard = [];
    listener.on("notification", (message) => heard.push(message.payload ?? ""));
    await listener.query(`LISTEN ${db.channel}`);
    sent = [];
  });

  afterEach(async () => {
    await listener.end();
    await db.close();
    await dropTestDatabase(url);
  });

  /**
   * A transaction that writes row 2 and marks a job finished, on the connection the ones
   * before it left: it alone is heard (notices arrive in commit order, so one sent before it
   * would come first), and its row is the only one.
   */
  async function expectOnlyTheNextHeard(): Promise<void> {
    await db.transaction(async (tx) => {
      await sql`INSERT INTO t VALUES (2)`.execute(tx.db);
      tx.mark({ finished: ["after"] });
    });
    await vi.waitFor(() => expect(heard).toHaveLength(1), { timeout: 5_000 });
    expect(parseNotice(heard[0] ?? "")?.finished).toEqual(["after"]);
    expect((await db.run(sql<{ n: number }>`SELECT n FROM t ORDER BY n`)).map((row) => row.n)).toEqual([2]);
  }

  it("sends what a transaction marked in the query that commits it, literals escaped", async () => {
    const finished = ["it's", "back\\slash", "é😀", ...Array.from({ length: 150 }, (_, i) => `job-${i}`)];
    await db.transaction(async (tx) => {
      await sql`INSERT INTO t VALUES (1)`.execute(tx.db);
      tx.mark({ claimable: true, finished });
    });
    // begin, the INSERT, then the NOTIFYs (two payloads: 100 finished ids a payload) and commit as one query.
    expect(sent).toHaveLength(3);
    expect(sent[0]).toBe("begin");
    expect(sent[2]).toMatch(/^SELECT pg_notify\(.*\); SELECT pg_notify\(.*\); commit$/s);
    await vi.waitFor(() => expect(heard).toHaveLength(2), { timeout: 5_000 });
    const notices = heard.map((payload) => parseNotice(payload));
    expect(notices.map((notice) => notice?.origin)).toEqual([db.origin, db.origin]);
    expect(notices[0]?.claimable).toBe(true);
    expect(notices.flatMap((notice) => notice?.finished ?? [])).toEqual(finished);
  });

  it("commits alone a transaction that marked nothing", async () => {
    await db.transaction(async (tx) => {
      await sql`INSERT INTO t VALUES (1)`.execute(tx.db);
    });
    expect(sent).toEqual(["begin", expect.stringContaining("INSERT INTO t"), "commit"]);
  });

  it("undoes a transaction whose NOTIFY fails (a payload past PostgreSQL's 8000 bytes): nothing written, nothing heard", async () => {
    await expect(
      db.transaction(async (tx) => {
        await sql`INSERT INTO t VALUES (1)`.execute(tx.db);
        tx.mark({ finished: ["x".repeat(9000)] });
      }),
    ).rejects.toThrow(/payload string too long/);
    expect(sent.slice(-2)).toEqual([expect.stringMatching(/^SELECT pg_notify\(.*; commit$/s), "rollback"]);
    await expectOnlyTheNextHeard();
  });

  it("refuses a query on a transaction that has ended, committed or undone", async () => {
    let kept: Tx | undefined;
    await db.transaction(async (tx) => {
      kept = tx;
      await sql`INSERT INTO t VALUES (1)`.execute(tx.db);
    });
    await expect(sql`INSERT INTO t VALUES (3)`.execute((kept as Tx).db)).rejects.toThrow(/transaction that has ended/);
    await expect(
      db.transaction(async (tx) => {
        kept = tx;
        throw new Error("undone");
      }),
    ).rejects.toThrow("undone");
    await expect(sql`INSERT INTO t VALUES (4)`.execute((kept as Tx).db)).rejects.toThrow(/transaction that has ended/);
    expect((await db.run(sql<{ n: number }>`SELECT n FROM t ORDER BY n`)).map((row) => row.n)).toEqual([1]);
  });

  it("sends nothing for a transaction undone, and its connection serves the next one", async () => {
    await expect(
      db.transaction(async (tx) => {
        await sql`INSERT INTO t VALUES (1)`.execute(tx.db);
        tx.mark({ scheduled: true });
        await sql`INSERT INTO t VALUES (1)`.execute(tx.db);
      }),
    ).rejects.toThrow(/duplicate key/);
    expect(sent.at(-1)).toBe("rollback");
    await expect(
      db.transaction(async (tx) => {
        tx.mark({ claimable: true });
        throw new Error("undone by the caller");
      }),
    ).rejects.toThrow("undone by the caller");
    await expectOnlyTheNextHeard();
  });
});
