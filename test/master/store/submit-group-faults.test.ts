// When a group of single submits fails (PostgreSQL, jobs/submit-group.ts): only an error one
// request's values cause is tried again, by halves in arrival order; a lost connection or a
// timeout, perhaps while COMMIT was in flight, fails every request of the group and runs none
// again (one might have been stored already). Groups are cut by size as well as by count.
import net from "node:net";
import { beforeEach, describe, expect, it } from "vitest";
import { SubmitGroup } from "../../../master/store/postgres/jobs/submit-group.js";
import type { SubmitRequest } from "../../../master/store/postgres/jobs/submit.js";
import { StorageUnreachableError, UnstorableValueError, type SubmitOutcome } from "../../../master/store/types.js";
import { dialects, jobParams, storePerTest, TEST_DATABASE_URL, type TestStore } from "../../helpers/store.js";

const request = (payload: unknown): SubmitRequest => ({ jobs: [jobParams({ payload })], options: {} });
const payloadOf = (request: SubmitRequest) => request.jobs[0]?.payload as { n: number; bad?: boolean; text?: string };
const answer = (request: SubmitRequest): SubmitOutcome => ({ ok: false, reason: "unknown_dependency", index: payloadOf(request).n, dependency: "" });

describe("a group of single submits", () => {
  /** The groups `together` was called with, as their requests' n. */
  let groups: number[][] = [];
  const record = (requests: SubmitRequest[]) => groups.push(requests.map((r) => payloadOf(r).n));
  beforeEach(() => (groups = []));

  it("is cut before the submit that would pass its size, and one bigger than that is a group of its own", async () => {
    const group = new SubmitGroup({ maxGroupPayloadChars: 100, together: async (requests) => (record(requests), requests.map((r) => answer(r))) });
    const sizes = [30, 30, 30, 30, 200, 10, 10];
    const outcomes = await Promise.all(sizes.map((size, n) => group.add(request({ n, text: "x".repeat(size) }))));
    expect(outcomes.map((outcome) => !outcome.ok && outcome.reason === "unknown_dependency" && outcome.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(groups).toEqual([[0, 1], [2, 3], [4], [5, 6]]);
  });

  it("is cut at its count", async () => {
    const group = new SubmitGroup({ maxGroup: 3, together: async (requests) => (record(requests), requests.map((r) => answer(r))) });
    await Promise.all(Array.from({ length: 7 }, (_, n) => group.add(request({ n }))));
    expect(groups).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
  });

  it("undone by one request's value, is run again by halves in order: only that request fails", async () => {
    const group = new SubmitGroup({
      together: async (requests) => {
        record(requests);
        if (requests.some((r) => payloadOf(r).bad === true)) throw new UnstorableValueError("a NUL");
        return requests.map((r) => answer(r));
      },
    });
    const settled = await Promise.allSettled(Array.from({ length: 8 }, (_, n) => group.add(request({ n, bad: n === 5 }))));
    expect(settled.map((s) => (s.status === "fulfilled" ? "ok" : s.reason instanceof UnstorableValueError))).toEqual(["ok", "ok", "ok", "ok", "ok", true, "ok", "ok"]);
    // Arrival order kept; log2(8) splits, not one transaction per request.
    expect(groups).toEqual([[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [6, 7]]);
  });

  it("fails every request with a lost connection or a timeout, and runs none of them again", async () => {
    for (const error of [new StorageUnreachableError("PostgreSQL: Connection terminated unexpectedly", "connection"), new Error("something else")]) {
      groups = [];
      const group = new SubmitGroup({ together: async (requests) => (record(requests), Promise.reject(error)) });
      const settled = await Promise.allSettled(Array.from({ length: 4 }, (_, n) => group.add(request({ n }))));
      expect(settled).toEqual(Array.from({ length: 4 }, () => ({ status: "rejected", reason: error })));
      expect(groups).toEqual([[0, 1, 2, 3]]);
    }
  });
});

/**
 * A proxy that passes every byte, except that once: after a connection sent `INSERT INTO jobs`,
 * its `commit` goes to the server, the server's answer is dropped and the connection closed.
 */
async function startCommitDropper(targetUrl: string) {
  const target = new URL(targetUrl);
  const sockets = new Set<net.Socket>();
  // The end of a simple-protocol Query message whose text ends with "commit" (the store sends
  // a transaction's NOTIFY, if any, in the same query, before it): the text's last word, then NUL.
  // Looked for in the text seen so far, so that one split over two chunks is found too.
  const commit = "commit\u0000";
  const state = { dropped: 0, armed: true };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => undefined);
      socket.on("close", () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    let inserted = false;
    let tail = "";
    client.on("data", (chunk: Buffer) => {
      const text = tail + chunk.toString("latin1");
      // A commit that ends in this chunk (one whose end came in an earlier chunk was let through).
      const at = text.lastIndexOf(commit);
      const committing = at !== -1 && at + commit.length > tail.length;
      tail = text.slice(-32);
      inserted ||= text.includes("INSERT INTO jobs");
      if (state.armed && inserted && committing) {
        state.armed = false;
        state.dropped++;
        upstream.removeAllListeners("data");
        // The COMMIT reaches the server (which commits, then finds the connection closed); its answer never comes back.
        upstream.end(chunk);
        client.destroy();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const proxied = new URL(targetUrl);
  proxied.hostname = "127.0.0.1";
  proxied.port = String((server.address() as net.AddressInfo).port);
  return {
    url: proxied.toString(),
    state,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

const postgres = dialects.filter((dialect) => dialect.name === "postgres");

describe.each(postgres)("single submits when the connection drops during COMMIT ($name)", (dialect) => {
  let t: TestStore;
  storePerTest(dialect, (opened) => (t = opened));

  it("stores each at most once: each is answered 201 and stored once, or fails as unreachable (503)", async () => {
    const proxy = await startCommitDropper(TEST_DATABASE_URL);
    const store = await t.reopen({ url: proxy.url });
    try {
      const settled = await Promise.allSettled(Array.from({ length: 5 }, (_, n) => store.jobs.submit([jobParams({ payload: { n } })], {})));
      expect(proxy.state.dropped).toBe(1);
      const stored = (await t.query("SELECT payload FROM jobs")).map((row) => (row.payload as { n: number }).n);
      for (const [n, outcome] of settled.entries()) {
        const copies = stored.filter((m) => m === n).length;
        if (outcome.status === "fulfilled") expect([outcome.value.ok, copies]).toEqual([true, 1]);
        else {
          expect(outcome.reason).toBeInstanceOf(StorageUnreachableError);
          expect(copies).toBeLessThanOrEqual(1);
        }
      }
      // The group committed before its connection went: nothing more was written.
      expect(stored.sort()).toEqual([0, 1, 2, 3, 4]);
      // The store goes on, on another connection.
      expect((await store.jobs.submit([jobParams({ payload: { n: 5 } })], {})).ok).toBe(true);
    } finally {
      await store.close();
      await proxy.close();
    }
  });
});
