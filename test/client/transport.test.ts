// A call leaves nothing behind: its timeout timer is cleared and its listener on the caller's
// signal removed once it has its answer, however many calls share the signal.
import { getEventListeners } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Client } from "../../client/index.js";

let server: Server | undefined;

afterEach(async () => {
  vi.useRealTimers();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

describe("gaffer/client transport", () => {
  it("clears each call's timer and its listener on the caller's signal once answered", async () => {
    server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ id: "j1", status: "pending" }));
    });
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const client = new Client({ masterUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: "t" });
    // Only the timers this code sets are faked (node:http keeps its own).
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const signal = new AbortController().signal;
    for (let call = 0; call < 5; call++) expect(await client.get("j1", { signal, timeoutMs: 60_000 })).toMatchObject({ id: "j1" });
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
