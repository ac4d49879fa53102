// How the PostgreSQL store talks to the server: timestamps read back as the API shows them,
// prepared statements that outlive a change of their tables.
import { describe, expect, it } from "vitest";
import { isoFromPg } from "../../../master/store/postgres/database.js";
import { claim, dialects, register, storePerTest, submit, type Dialect, type TestStore } from "../../helpers/store.js";

/** The old way, through Date, as the reference. */
function throughDate(text: string): string {
  return new Date(text.replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00")).toISOString();
}

describe("isoFromPg", () => {
  it("writes a UTC timestamp as ISO-8601 with milliseconds, as Date would, whatever its fraction", () => {
    for (const text of [
      "2026-12-06 19:30:00+00",
      "2026-12-06 19:30:00.1+00",
      "2026-12-06 19:30:00.12+00",
      "2026-12-06 19:30:00.123+00",
      "2026-12-06 19:30:00.1239+00",
      "2026-12-06 19:30:00.999999+00",
      "2000-02-29 00:00:00.000001+00",
      "1999-12-31 23:59:59.9995+00",
    ]) {
      expect(isoFromPg(text), text).toBe(throughDate(text));
    }
    expect(isoFromPg("2026-12-06 19:30:00.123456+00")).toBe("2026-12-06T19:30:00.123Z");
  });

  it("leaves any other offset to Date", () => {
    expect(isoFromPg("2026-12-06 21:30:00.5+02")).toBe("2026-12-06T19:30:00.500Z");
    expect(isoFromPg("2026-12-06 14:00:00-05")).toBe("2026-12-06T19:00:00.000Z");
  });
});

describe.skipIf(!dialects.some((dialect) => dialect.name === "postgres"))("prepared statements (postgres)", () => {
  const postgres = dialects.find((dialect) => dialect.name === "postgres") as Dialect;
  let t: TestStore;
  storePerTest(postgres, (opened) => (t = opened));

  it("drops a connection whose prepared claim no longer fits the tables, so the claims after it work", async () => {
    await submit(t.store);
    const node = await register(t.store);
    expect(await claim(t.store, node.id, 1)).toHaveLength(1);
    // What a migration by a newer master can do under a running one: a column the claim returns changes type.
    await t.query("ALTER TABLE jobs ALTER COLUMN timeout_s TYPE numeric");
    const job = await submit(t.store);
    const outcomes: string[] = [];
    for (let i = 0; i < 6 && !outcomes.includes("claimed"); i++) {
      outcomes.push(await claim(t.store, node.id, 1).then((items) => (items[0]?.id === job.id ? "claimed" : "nothing"), () => "failed"));
    }
    // Each pooled connection that had prepared the claim fails it once, then is replaced.
    expect(outcomes.at(-1)).toBe("claimed");
    expect(outcomes.filter((outcome) => outcome === "failed").length).toBeGreaterThan(0);
  });
});
