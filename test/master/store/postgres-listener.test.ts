// The LISTEN connection of a PostgreSQL store (API.md §12): one that goes silent without
// closing (a network partition) is found by its check and made again, the listeners told
// that commits may have gone unheard; and closing it never waits on a silent network.
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CommitListener } from "../../../master/store/postgres/listener.js";
import type { Committed } from "../../../master/store/types.js";
import { dialects, TEST_DATABASE_URL } from "../../helpers/store.js";
import { startTcpProxy, type TcpProxy } from "../../helpers/tcp-proxy.js";

const havePostgres = dialects.some((dialect) => dialect.name === "postgres");

describe.runIf(havePostgres)("the LISTEN connection on PostgreSQL", () => {
  let proxy: TcpProxy | undefined;
  let listener: CommitListener | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
    await listener?.close();
    listener = undefined;
  });

  const listen = async (url: string, errors: string[] = []) => {
    listener = new CommitListener({
      url,
      channel: `gaffer_test_${randomUUID().slice(0, 8)}`,
      origin: randomUUID(),
      onConnectionError: (message) => errors.push(message),
      checkEveryMs: 100,
      checkTimeoutMs: 300,
    });
    await listener.start();
    return listener;
  };

  it("notices a connection gone silent, makes it again, and says commits may have been missed", async () => {
    proxy = await startTcpProxy(TEST_DATABASE_URL);
    const errors: string[] = [];
    const heard: Committed[] = [];
    (await listen(proxy.url, errors)).subscribe((change) => heard.push(change));
    proxy.freeze();
    // New connections still go through: the one made again works.
    await vi.waitFor(() => expect(heard.some((change) => change.missed)).toBe(true), { timeout: 10_000 });
    expect(errors[0]).toMatch(/did not answer its check/);
  }, 30_000);

  it("closes without waiting on a connection gone silent", async () => {
    proxy = await startTcpProxy(TEST_DATABASE_URL);
    const silent = await listen(proxy.url);
    proxy.holdNew();
    proxy.freeze();
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<string>((resolve) => (timer = setTimeout(() => resolve("hung"), 10_000)));
    expect(await Promise.race([silent.close().then(() => "closed"), hung])).toBe("closed");
    clearTimeout(timer);
  }, 30_000);
});
