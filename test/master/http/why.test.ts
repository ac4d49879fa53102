// GET /jobs/:id/why over real HTTP: each reason a job waits, from the facts the dispatcher
// goes by; a job it calls ready is handed out on the next claim of an eligible node.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../../master/index.js";
import type { WhyAnswer } from "../../../master/queue/why.js";
import { http, startTestMaster } from "../../helpers/master.js";
import { removeTempDirs } from "../../helpers/temp.js";

let master: MasterInternals;
const call = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) => http<T>(master.url, method, path, body);
const why = async (id: string) => (await call<WhyAnswer>("GET", `/api/v1/jobs/${id}/why`)).body;
const codes = (answer: WhyAnswer) => answer.reasons.map((reason) => reason.code);

beforeAll(async () => {
  master = await startTestMaster();
});
afterAll(async () => {
  await master.close();
  removeTempDirs();
});

async function submit(body: Record<string, unknown>): Promise<string> {
  const made = await call("POST", "/api/v1/jobs", body);
  expect(made.status).toBe(201);
  return String(made.body.id);
}

async function node(name: string, labels: string[], capacity: number, types?: string[]): Promise<string> {
  const made = await call("POST", "/api/v1/nodes", { name, labels, capacity, ...(types ? { types } : {}) });
  return String(made.body.id);
}

describe("GET /jobs/:id/why", () => {
  it("says no node has its labels, then that none runs its type, then that they are full, then that it is next", async () => {
    const id = await submit({ type: "render", requires: ["why-gpu"] });
    expect(await why(id)).toMatchObject({ status: "pending", ready: false, eligible_nodes: 0 });
    expect(codes(await why(id))).toEqual(["no_eligible_node", "queued"]);
    expect((await why(id)).reasons[0]).toMatchObject({ labels: ["why-gpu"] });

    await node("why-resizer", ["why-gpu"], 1, ["resize"]);
    expect(codes(await why(id))).toEqual(["no_handler", "queued"]);
    expect((await why(id)).reasons[0]).toMatchObject({ type: "render" });

    const busy = await node("why-renderer", ["why-gpu"], 1, ["render"]);
    const first = await submit({ type: "render", requires: ["why-gpu"], priority: "high" });
    const claimed = await call<{ items: { id: string }[] }>("POST", `/api/v1/nodes/${busy}/claim`, { max: 1 });
    expect(claimed.body.items.map((job) => job.id)).toEqual([first]);
    expect(codes(await why(id))).toEqual(["nodes_busy", "queued"]);

    // A slot frees: ready, and next; a job submitted after it has one job ahead.
    await call("POST", `/api/v1/jobs/${first}/complete`, { node_id: busy, attempt: 1 });
    const later = await submit({ type: "render", requires: ["why-gpu"] });
    expect(await why(id)).toMatchObject({ ready: true, jobs_ahead: 0, eligible_nodes: 1, reasons: [{ code: "queued", jobs_ahead: 0 }] });
    expect(await why(later)).toMatchObject({ ready: true, jobs_ahead: 1 });
    // What it calls ready goes out on the next claim of an eligible node.
    const next = await call<{ items: { id: string }[] }>("POST", `/api/v1/nodes/${busy}/claim`, { max: 1 });
    expect(next.body.items.map((job) => job.id)).toEqual([id]);
    expect(await why(id)).toMatchObject({ status: "running", reasons: [], ready: false });
  });

  it("says a job is scheduled, blocked on its dependencies, or held by a paused master", async () => {
    const runAt = new Date(Date.now() + 3_600_000).toISOString();
    const later = await submit({ type: "report", run_at: runAt });
    expect((await why(later)).reasons[0]).toMatchObject({ code: "scheduled", run_at: runAt });
    const parent = await submit({ type: "report", requires: ["why-nobody"] });
    const child = await submit({ type: "report", depends_on: [parent] });
    expect((await why(child)).reasons[0]).toMatchObject({ code: "blocked", dependencies: [{ id: parent, status: "pending" }] });

    expect((await call("PUT", "/api/v1/state/mode", { mode: "paused" })).status).toBe(200);
    try {
      expect(codes(await why(parent))).toContain("master_paused");
      expect((await why(parent)).ready).toBe(false);
    } finally {
      await call("PUT", "/api/v1/state/mode", { mode: "normal" });
    }
  });

  it("answers 404 for a job that does not exist", async () => {
    expect((await call("GET", "/api/v1/jobs/00000000-0000-4000-8000-000000000000/why")).status).toBe(404);
  });
});
