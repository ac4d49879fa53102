// Generated requests (fast-check) for every route of the OpenAPI document: never a 5xx,
// never a crash, and the master healthy with its database intact afterwards.
import * as fc from "fast-check";
import Database from "better-sqlite3";
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../master/auth/clients.js";
import type { MasterInternals } from "../../master/index.js";
import { startTestMaster } from "../helpers/master.js";
import { removeTempDirs } from "../helpers/temp.js";
import { FULL } from "./cluster.js";

const RUNS_PER_ROUTE = FULL ? 400 : 40;

const NASTY = [
  "' OR 1=1 --",
  '"; DROP TABLE jobs; --',
  "${jndi:ldap://127.0.0.1/x}",
  "<script>alert(1)</script>",
  "../../../../etc/passwd",
  "\u0000",
  "%00",
  "NaN",
  "-1",
  "1e309",
  "__proto__",
  "constructor",
  "𝕲𝖆𝖋𝖋𝖊𝖗",
  " ",
  "a".repeat(70),
];

const jsonish: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.constantFrom(...NASTY),
  fc.integer({ min: -1e15, max: 1e15 }),
  fc.double(),
  fc.constantFrom(0, -1, 1, 100, 101, 1000, 1001, 2 ** 31, 2 ** 53 + 1, null, true, false, [], {}),
  fc.array(fc.constantFrom(...NASTY), { maxLength: 5 }),
);

/** A body: mostly objects with the route's own field names (so validation is really exercised). */
function bodies(fields: string[]): fc.Arbitrary<{ text: string | Uint8Array | undefined; type: string | undefined }> {
  const known = fields.length > 0 ? fc.dictionary(fc.constantFrom(...fields, "__proto__", "extra"), jsonish, { maxKeys: 8 }) : fc.constant({});
  const asJson = (value: unknown) => ({ text: JSON.stringify(value), type: "application/json" });
  return fc.oneof(
    { weight: 6, arbitrary: known.map((value) => asJson(value)) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 6 }).map((value) => asJson(value)) },
    { weight: 1, arbitrary: fc.integer({ min: 100, max: 20_000 }).map((depth) => ({ text: `${"[".repeat(depth)}${"]".repeat(depth)}`, type: "application/json" })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((bytes) => ({ text: bytes, type: "application/json" })) },
    { weight: 1, arbitrary: fc.string().map((text) => ({ text, type: "text/plain" })) },
    { weight: 1, arbitrary: fc.constant({ text: `{"payload":"${"x".repeat(3_000_000)}"}`, type: "application/json" }) },
    { weight: 1, arbitrary: fc.constant({ text: undefined, type: undefined }) },
    { weight: 1, arbitrary: known.map((value) => ({ text: JSON.stringify(value), type: "application/json; charset=utf-16" })) },
  );
}

function fieldsOf(schema: z.ZodType | undefined): string[] {
  return schema instanceof z.ZodObject ? Object.keys(schema.shape as object) : [];
}

let master: MasterInternals;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  master = await startTestMaster({ auth: "on", rateLimitPerMinute: 10_000_000, workerRateLimitPerMinute: 10_000_000 });
  for (const role of ["admin", "client", "worker"] as const) {
    const client = await createClient(master.store, { name: `fuzz-${role}`, role, actor: null });
    tokens[role] = (await master.tokens?.issue(client))?.access_token ?? "";
  }
  // Something for the generated requests to find.
  const auth = { authorization: `Bearer ${tokens.admin}`, "content-type": "application/json" };
  await fetch(`${master.url}/api/v1/jobs`, { method: "POST", headers: auth, body: JSON.stringify({ type: "seed" }) });
  await fetch(`${master.url}/api/v1/nodes`, { method: "POST", headers: auth, body: JSON.stringify({ name: "seed" }) });
}, 60_000);

afterAll(async () => {
  await master.close();
  removeTempDirs();
});

describe("bad input", () => {
  it(`answers ${RUNS_PER_ROUTE} generated requests per route without a 5xx`, async () => {
    const failures: string[] = [];
    for (const route of master.routes) {
      const credential = fc.constantFrom<string | undefined>(tokens.admin, tokens.client, tokens.worker, "garbage.token.here", undefined);
      const pathParam = fc.oneof(fc.uuid(), fc.constantFrom(...NASTY), fc.string({ maxLength: 100 }));
      const query = fc.dictionary(fc.constantFrom(...fieldsOf(route.spec.query), "limit", "cursor", "x"), fc.oneof(fc.string(), fc.constantFrom(...NASTY)), {
        maxKeys: 4,
      });
      const request = fc.record({ credential, id: pathParam, query, body: bodies(fieldsOf(route.spec.body)) });
      await fc.assert(
        fc.asyncProperty(request, async ({ credential: token, id, query: params, body }) => {
          const path = route.spec.path.replace(/:([a-z_]+)/g, () => encodeURIComponent(id));
          const url = `${master.url}${path}?${new URLSearchParams(params).toString()}`;
          const headers: Record<string, string> = {};
          if (token) headers.authorization = `Bearer ${token}`;
          if (body.type) headers["content-type"] = body.type;
          const method = route.spec.method.toUpperCase();
          const response = await fetch(url, {
            method,
            headers,
            body: method === "GET" ? undefined : body.text,
            signal: AbortSignal.timeout(15_000),
          });
          const text = await response.text();
          if (response.status >= 500) failures.push(`${method} ${path} → ${response.status}: ${text.slice(0, 200)}`);
          if (response.status >= 400 && !response.headers.get("content-type")?.startsWith("application/problem+json")) {
            failures.push(`${method} ${path} → ${response.status} without a problem document`);
          }
          return response.status < 500;
        }),
        { numRuns: RUNS_PER_ROUTE },
      );
    }
    expect(failures).toEqual([]);
  }, 600_000);

  it("leaves the master healthy and its database intact", async () => {
    expect((await fetch(`${master.url}/health`)).status).toBe(200);
    expect((await fetch(`${master.url}/ready`)).status).toBe(200);
    const db = new Database(master.config.db, { readonly: true });
    try {
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
      expect(db.pragma("foreign_key_check")).toEqual([]);
    } finally {
      db.close();
    }
  });
});
