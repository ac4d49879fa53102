// GET /ready's look at the database (API.md §8, §12): public, so probes share one ping and its
// answer for a moment, and a database that does not answer in time makes it 503, not a hang.
import { afterEach, describe, expect, it } from "vitest";
import { SharedPing } from "../../../master/http/routes/ops.js";
import type { MasterInternals } from "../../../master/index.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { createTestDatabase, dropTestDatabase } from "../../helpers/postgres.js";
import { dialects } from "../../helpers/store.js";
import { startTcpProxy, type TcpProxy } from "../../helpers/tcp-proxy.js";

const havePostgres = dialects.some((dialect) => dialect.name === "postgres");

/** A ping the test answers by hand, counting its calls. */
function manualPing() {
  const calls: { resolve: () => void; reject: (error: Error) => void }[] = [];
  const ping = () => new Promise<void>((resolve, reject) => calls.push({ resolve, reject }));
  return { calls, ping };
}

const settled = (promise: Promise<void>) => promise.then(
  () => "ok",
  (error: unknown) => (error as Error).message,
);

describe("SharedPing", () => {
  it("sends one ping for every probe that comes while it is in flight, and keeps its answer a while", async () => {
    let now = 0;
    const { calls, ping } = manualPing();
    const shared = new SharedPing(ping, 1_000, 2_000, () => now);
    const probes = [shared.check(), shared.check(), shared.check()];
    expect(calls).toHaveLength(1);
    calls[0]?.resolve();
    await Promise.all(probes);
    now = 999;
    await shared.check();
    expect(calls).toHaveLength(1);
    now = 1_000;
    const next = shared.check();
    expect(calls).toHaveLength(2);
    calls[1]?.reject(new Error("gone"));
    expect(await settled(next)).toBe("gone");
    // The failure stands for a while too.
    expect(await settled(shared.check())).toBe("gone");
    expect(calls).toHaveLength(2);
  });

  it("answers unavailable when the ping takes too long, at once while it still hangs, and pings again only once it settled", async () => {
    let now = 0;
    const { calls, ping } = manualPing();
    const shared = new SharedPing(ping, 1_000, 20, () => now);
    expect(await settled(shared.check())).toMatch(/did not answer within/);
    now = 5_000;
    expect(await settled(shared.check())).toMatch(/did not answer within/);
    expect(calls).toHaveLength(1);
    calls[0]?.resolve();
    await Promise.resolve();
    expect(await settled(shared.check())).toBe("ok");
  });
});

describe.runIf(havePostgres)("GET /ready on PostgreSQL", () => {
  let url: string | undefined;
  let proxy: TcpProxy | undefined;
  let master: MasterInternals | undefined;
  afterEach(async () => {
    await proxy?.close();
    await master?.close();
    if (url) await dropTestDatabase(url);
  });

  it("answers 503 when the database goes silent, instead of waiting on it", async () => {
    url = await createTestDatabase();
    proxy = await startTcpProxy(url);
    master = await startTestMaster({ databaseUrl: proxy.url });
    expect((await http(master.url, "GET", "/ready")).status).toBe(200);
    // Past the answer kept from that one.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    proxy.holdNew();
    proxy.freeze();
    const probes = await Promise.all([1, 2, 3].map(() => http(master?.url ?? "", "GET", "/ready", undefined, {})));
    expect(probes.map((probe) => probe.status)).toEqual([503, 503, 503]);
    expect(probes[0]?.body).toMatchObject({ code: "unavailable" });
  }, 30_000);
});
