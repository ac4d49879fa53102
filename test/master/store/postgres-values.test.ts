// How the PostgreSQL store reads values back: timestamps as the API shows them.
import { describe, expect, it } from "vitest";
import { isoFromPg } from "../../../master/store/postgres/database.js";

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
