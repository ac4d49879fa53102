// Every list answers each item whole: the same fields, and the same values, as the
// item answered on its own (a list once dropped four fields from all but its first job).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { z } from "zod";
import { createClient } from "../../../master/auth/clients.js";
import {
  auditEntrySchema,
  clientSchema,
  jobSchema,
  nodeSchema,
  scheduleSchema,
  tokenSchema,
} from "../../../master/http/schemas.js";
import type { MasterInternals } from "../../../master/index.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs } from "../../helpers/temp.js";

type Item = Record<string, unknown>;
type Page = { items: Item[]; next_cursor: string | null };

let master: MasterInternals;
let admin: Record<string, string>;

const call = <T = Item>(method: string, path: string, body?: unknown) => http<T>(master.url, method, path, body, admin);

/** Every page of a list, followed to its end. */
async function all(path: string): Promise<Item[]> {
  const items: Item[] = [];
  let cursor: string | null = null;
  do {
    const separator = path.includes("?") ? "&" : "?";
    const page: { status: number; body: Page } = await call<Page>("GET", cursor === null ? path : `${path}${separator}cursor=${cursor}`);
    expect(page.status).toBe(200);
    items.push(...page.body.items);
    cursor = page.body.next_cursor;
  } while (cursor !== null);
  return items;
}

/** Each item has exactly the fields of the schema the route declares. */
function expectFields(items: Item[], schema: z.ZodObject) {
  const fields = Object.keys(schema.shape).sort();
  expect(items.length).toBeGreaterThan(1);
  for (const item of items) expect(Object.keys(item).sort()).toEqual(fields);
}

beforeAll(async () => {
  master = await startTestMaster({ auth: "on", rateLimitPerMinute: 100_000 });
  const made = await createClient(master.store, { name: "admin", role: "admin", actor: null });
  const token = await http<{ access_token: string }>(master.url, "POST", "/api/v1/auth/token", {
    client_id: made.id,
    client_secret: made.client_secret,
  });
  admin = { authorization: `Bearer ${token.body.access_token}` };
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

describe("list items are whole", () => {
  it("answers each job of GET /jobs as GET /jobs/:id does, on every page", async () => {
    const first = await call("POST", "/api/v1/jobs", { type: "root", payload: { n: 0 } });
    await call("POST", "/api/v1/jobs/batch", {
      jobs: Array.from({ length: 7 }, (_, n) => ({
        type: "leaf",
        payload: { n: n + 1 },
        requires: n % 2 === 0 ? ["gpu"] : [],
        depends_on: n === 3 ? [first.body.id] : [],
        tags: { customer: `c${n}` },
      })),
    });
    for (const path of ["/api/v1/jobs?limit=3", "/api/v1/jobs?limit=2&type=leaf", "/api/v1/jobs?limit=4&status=pending"]) {
      const items = await all(path);
      expectFields(items, jobSchema);
      for (const item of items) expect(item).toEqual((await call("GET", `/api/v1/jobs/${String(item.id)}`)).body);
    }
  });

  it("answers each node of GET /nodes as GET /nodes/:id does", async () => {
    for (const [index, name] of ["n1", "n2", "n3"].entries()) {
      await call("POST", "/api/v1/nodes", { name, labels: [`l${index}`], capacity: index + 1, hardware: { cpus: index } });
    }
    const items = await all("/api/v1/nodes?limit=2");
    expectFields(items, nodeSchema);
    for (const item of items) expect(item).toEqual((await call("GET", `/api/v1/nodes/${String(item.id)}`)).body);
  });

  it("answers each schedule of GET /schedules as GET /schedules/:id does", async () => {
    for (const name of ["s1", "s2", "s3"]) {
      await call("POST", "/api/v1/schedules", { name, cron: "0 3 * * *", job: { type: "report", payload: { name } } });
    }
    const items = await all("/api/v1/schedules?limit=2");
    expectFields(items, scheduleSchema);
    for (const item of items) expect(item).toEqual((await call("GET", `/api/v1/schedules/${String(item.id)}`)).body);
  });

  it("answers each client of GET /clients as it was created, but for the secret", async () => {
    const made: Item[] = [];
    for (const name of ["c1", "c2", "c3"]) {
      const { client_secret: _secret, ...client } = (await call("POST", "/api/v1/clients", { name, role: "client" })).body;
      made.push(client);
    }
    const items = await all("/api/v1/clients?limit=2");
    expectFields(items, clientSchema);
    for (const client of made) expect(items).toContainEqual(client);
  });

  it("answers each token of GET /tokens whole, as revoking it answers it", async () => {
    const made = await createClient(master.store, { name: "tokens", role: "client", actor: null });
    for (let n = 0; n < 3; n++) {
      await http(master.url, "POST", "/api/v1/auth/token", { client_id: made.id, client_secret: made.client_secret });
    }
    const before = await all(`/api/v1/tokens?limit=2&client_id=${made.id}`);
    expect(before).toHaveLength(3);
    const revoked = (await call("DELETE", `/api/v1/tokens/${String(before[1]?.id)}`)).body;
    const items = await all("/api/v1/tokens?limit=2");
    expectFields(items, tokenSchema);
    expect(items).toContainEqual(revoked);
  });

  it("answers each audit entry of GET /audit whole, on every page", async () => {
    // Single submissions: a row each (a batch has one row for all its jobs).
    for (const n of [1, 2, 3]) await call("POST", "/api/v1/jobs", { type: "audited", payload: { n } });
    const items = await all("/api/v1/audit?limit=3");
    expectFields(items, auditEntrySchema);
    const jobs = await all("/api/v1/audit?limit=2&entity_type=job");
    expectFields(jobs, auditEntrySchema);
    for (const entry of jobs) expect(items).toContainEqual(entry);
  });
});
