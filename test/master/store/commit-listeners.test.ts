// Who hears a store's commits: every listener, each change; one that throws is said and the others still hear.
import { describe, expect, it } from "vitest";
import { CommitListeners } from "../../../master/store/commit-listeners.js";
import type { Committed } from "../../../master/store/types.js";

const change: Committed = { claimable: true, scheduled: false, schedules: false, finished: ["a"] };

describe("CommitListeners", () => {
  it("tells every listener, says a listener's throw and goes on, and forgets one that left", () => {
    const errors: unknown[] = [];
    const listeners = new CommitListeners((error) => errors.push(error));
    const heard: string[] = [];
    listeners.subscribe(() => {
      throw new Error("first fails");
    });
    const leave = listeners.subscribe((c) => heard.push(`second ${c.finished.join()}`));
    listeners.tell(change);
    expect(heard).toEqual(["second a"]);
    expect(errors).toEqual([new Error("first fails")]);
    leave();
    listeners.tell(change);
    expect(heard).toEqual(["second a"]);
    expect(errors).toHaveLength(2);
  });
});
