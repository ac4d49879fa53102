// Token cleanup: expired access tokens go, and so do the rate limits' counters whose window
// ended (kept in the database on PostgreSQL); live ones stay.
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createClient } from "../../../master/auth/clients.js";
import { TokenCleanup } from "../../../master/sweepers/token-cleanup.js";
import { dialects, type TestStore, storePerTest } from "../../helpers/store.js";

describe.each(dialects)("token cleanup ($name)", (dialect) => {
  let t: TestStore;
  storePerTest(dialect, (opened) => (t = opened));

  it("deletes expired tokens and keeps live ones", async () => {
    const client = await createClient(t.store, { name: "c", role: "client", actor: null });
    const issue = (id: string, ttlS: number) =>
      t.store.tokens.issue({ id, clientId: client.id, tokenHash: `hash-${id}`, expiresAt: new Date(t.clock.now().getTime() + ttlS * 1000) });
    await issue("short", 60);
    await issue("long", 7200);
    t.clock.advanceSeconds(120);
    expect(await new TokenCleanup(t.store, t.clock, pino({ level: "silent" })).runOnce()).toBe(1);
    expect((await t.store.tokens.list({ limit: 10 })).items.map((token) => token.id)).toEqual(["long"]);
  });

  it.runIf(dialect.name === "postgres")("deletes the rate limits' counters whose window ended", async () => {
    await t.store.rateLimits.limiter({ keyPrefix: "client", points: 5, durationS: 60 }).consume("live");
    await t.query("INSERT INTO rate_limits (key, points, expire) VALUES ('client:gone', 3, ?)", [Date.now() - 1000]);
    await new TokenCleanup(t.store, t.clock, pino({ level: "silent" })).runOnce();
    expect(await t.query("SELECT key FROM rate_limits")).toEqual([{ key: "client:live" }]);
  });
});
