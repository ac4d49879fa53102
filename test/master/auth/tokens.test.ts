// Checking access tokens: a repeat use is answered from the cache without hashing the token
// again; the cache still ends with its time, a revocation, or a disabled client.
import * as crypto from "node:crypto";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createClient } from "../../../master/auth/clients.js";
import { TOKEN_CACHE_MS, TokenService } from "../../../master/auth/tokens.js";
import { FakeClock } from "../../helpers/clock.js";
import { dialects, storePerTest, type TestStore } from "../../helpers/store.js";

vi.mock("node:crypto", async (importOriginal) => {
  const actual = await importOriginal<typeof crypto>();
  return { ...actual, createHash: vi.fn(actual.createHash) };
});

const hashes = () => vi.mocked(crypto.createHash).mock.calls.filter(([algorithm]) => algorithm === "sha256").length;

describe.each(dialects)("access tokens ($name)", (dialect) => {
  let t: TestStore;
  let clock: FakeClock;
  let tokens: TokenService;
  storePerTest(dialect, (opened) => (t = opened));

  beforeEach(() => {
    clock = new FakeClock();
    tokens = new TokenService({ store: t.store, secret: "s".repeat(40), ttlS: 3600, clock, log: pino({ level: "silent" }) });
    vi.mocked(crypto.createHash).mockClear();
  });
  afterEach(() => vi.mocked(crypto.createHash).mockClear());

  async function issued() {
    const client = await createClient(t.store, { name: "c", role: "client", actor: null });
    const token = (await tokens.issue({ id: client.id, role: "client" })).access_token;
    vi.mocked(crypto.createHash).mockClear();
    return { client, token };
  }

  it("hashes a token for the database's look-up only: its repeat uses are answered without hashing it", async () => {
    const { client, token } = await issued();
    const first = await tokens.check(token);
    expect(first).toMatchObject({ clientId: client.id, role: "client" });
    expect(hashes()).toBe(1);
    for (let i = 0; i < 5; i++) expect(await tokens.check(token)).toEqual(first);
    expect(hashes()).toBe(1);
    // Looked up again once the cache's time has passed.
    clock.advance(TOKEN_CACHE_MS);
    expect(await tokens.check(token)).toEqual(first);
    expect(hashes()).toBe(2);
  });

  it("keeps no token in its cache past the cache's time, used again or not", async () => {
    const cache = (tokens as unknown as { cache: Map<string, unknown> }).cache;
    const { token } = await issued();
    await tokens.check(token);
    const idle = await issued();
    await tokens.check(idle.token);
    expect(cache.has(token) && cache.has(idle.token)).toBe(true);
    clock.advance(TOKEN_CACHE_MS);
    // Used again: checked again (and cached again, fresh). Not used again: purged with the others past their time.
    await tokens.check(token);
    const fresh = await issued();
    for (let i = 0; i < 256; i++) await tokens.check(fresh.token).then(() => tokens.forget({ clientId: fresh.client.id }));
    expect(cache.has(idle.token)).toBe(false);
  });

  it("checks a cached token again once it is forgotten: revoked, or its client disabled", async () => {
    const first = await issued();
    const principal = await tokens.check(first.token);
    expect((await t.store.tokens.revoke({ id: principal.tokenId ?? "", actor: null })).ok).toBe(true);
    expect(await tokens.check(first.token)).toEqual(principal);
    tokens.forget({ tokenIds: [principal.tokenId ?? ""] });
    await expect(tokens.check(first.token)).rejects.toThrow(/revoked/);
    const second = await issued();
    await tokens.check(second.token);
    expect((await t.store.clients.disable({ id: second.client.id, actor: null })).ok).toBe(true);
    tokens.forget({ clientId: second.client.id });
    await expect(tokens.check(second.token)).rejects.toThrow(/revoked|disabled/);
  });
});
