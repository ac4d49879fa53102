// A job whose row someone edited with the sqlite3 shell into JSON that is not: the API still
// shows it (the column as its default) and hands it out with a null payload, and the master
// says so in its log, rather than failing every answer the row is part of.
import { Writable } from "node:stream";
import Database from "better-sqlite3";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs } from "../../helpers/temp.js";

let master: MasterInternals;
const lines: Record<string, unknown>[] = [];
const call = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) => http<T>(master.url, method, path, body);

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  master = await startTestMaster({ logger: pino({ level: "warn" }, sink) });
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

/** Edit the job's row as an operator would, on a connection of its own. */
function edit(sql: string, id: string): void {
  const db = new Database(master.config.db);
  try {
    db.prepare(sql).run(id);
  } finally {
    db.close();
  }
}

describe("a job row edited by hand", () => {
  it("shows with the column as its default, goes to its node with a null payload, and the master logs which", async () => {
    const made = await call<{ id: string }>("POST", "/api/v1/jobs", { type: "edited", payload: { n: 1 }, tags: { k: "v" } });
    const kept = await call<{ id: string }>("POST", "/api/v1/jobs", { type: "edited", payload: { n: 2 } });
    const id = made.body.id;
    edit("UPDATE jobs SET payload = '{not json', tags = '{' WHERE id = ?", id);

    const shown = await call<{ payload: unknown; tags: unknown }>("GET", `/api/v1/jobs/${id}`);
    expect([shown.status, shown.body.payload, shown.body.tags]).toEqual([200, null, {}]);
    const listed = await call<{ items: { id: string }[] }>("GET", "/api/v1/jobs?type=edited");
    expect([listed.status, listed.body.items.map((job) => job.id)]).toEqual([200, [kept.body.id, id]]);
    expect((await call("GET", `/api/v1/jobs/${id}/why`)).status).toBe(200);

    const nodeId = String((await call("POST", "/api/v1/nodes", { name: "edited-node", capacity: 5 })).body.id);
    const claimed = await call<{ items: { id: string; payload: unknown }[] }>("POST", `/api/v1/nodes/${nodeId}/claim`, { max: 5 });
    expect(claimed.body.items.map((job) => [job.id, job.payload])).toEqual([
      [id, null],
      [kept.body.id, { n: 2 }],
    ]);
    const said = lines.filter((line) => line.event === "job.payload_unreadable");
    expect(said).toEqual([expect.objectContaining({ jobId: id, nodeId, level: 40 })]);
  });
});
