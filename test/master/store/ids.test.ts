// Job ids: UUIDs in version 7's layout, their first 48 bits the millisecond they were made.
import { describe, expect, it } from "vitest";
import { timeOrderedId } from "../../../master/store/pages.js";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const timeOf = (id: string) => Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);

describe("timeOrderedId", () => {
  it("lays out a version 7 UUID whose time is the millisecond asked for, each call its own", () => {
    const at = Date.parse("2026-12-07T06:00:00.123Z");
    // The same millisecond twice (a batch), others between and after: each id carries its own.
    const times = [at, at, at + 1, at, 0, 2 ** 48 - 1, at];
    const ids = times.map((time) => timeOrderedId(time));
    for (const id of ids) expect(id).toMatch(UUID_V7);
    expect(ids.map((id) => timeOf(id))).toEqual(times);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("sorts ids made in later milliseconds after earlier ones", () => {
    const ids = [1_000, 1_001, 70_000, 1_765_000_000_000].map((time) => timeOrderedId(time));
    expect([...ids].sort()).toEqual(ids);
  });
});
