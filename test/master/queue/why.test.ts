// The rules of "why is my job waiting", without a store: one fact changed at a time.
import { describe, expect, it } from "vitest";
import { whyWaiting, type NodeFacts, type WhyFacts } from "../../../master/queue/why.js";

const node = (overrides: Partial<NodeFacts> = {}): NodeFacts => ({
  id: "n1",
  name: "n1",
  status: "online",
  labels: ["gpu"],
  types: null,
  capacity: 2,
  running: 0,
  ...overrides,
});

const facts = (overrides: Partial<WhyFacts> = {}): WhyFacts => ({
  status: "pending",
  type: "render",
  requires: ["gpu"],
  readyAt: null,
  waitingOn: [],
  paused: false,
  nodes: [node()],
  jobsAhead: 3,
  ...overrides,
});

const codes = (given: Partial<WhyFacts>) => whyWaiting(facts(given)).reasons.map((reason) => reason.code);

describe("whyWaiting", () => {
  it("calls a pending job with a free eligible node ready, with the jobs ahead of it", () => {
    expect(whyWaiting(facts())).toMatchObject({ ready: true, jobs_ahead: 3, eligible_nodes: 1, reasons: [{ code: "queued", jobs_ahead: 3 }] });
    expect(whyWaiting(facts({ jobsAhead: null })).reasons[0]?.message).toBe("many jobs are ahead of it for the same nodes");
  });

  it.each([
    ["no node at all", { nodes: [] }, ["no_eligible_node", "queued"]],
    ["no node with its labels", { nodes: [node({ labels: ["cpu"] })] }, ["no_eligible_node", "queued"]],
    ["nodes with its labels but not its type", { nodes: [node({ types: ["resize"] })] }, ["no_handler", "queued"]],
    ["its only node full", { nodes: [node({ running: 2 })] }, ["nodes_busy", "queued"]],
    ["its only node draining", { nodes: [node({ status: "draining" })] }, ["nodes_busy", "queued"]],
    ["one of two nodes free", { nodes: [node({ running: 2 }), node({ id: "n2", running: 1 })] }, ["queued"]],
    ["the master paused", { paused: true }, ["master_paused", "queued"]],
    ["scheduled", { status: "scheduled" as const, readyAt: "2030-01-01T00:00:00.000Z" }, ["scheduled"]],
    ["blocked", { status: "blocked" as const, waitingOn: [{ id: "p", status: "running" as const }] }, ["blocked"]],
  ])("%s", (_name, given, expected) => {
    expect(codes(given)).toEqual(expected);
    expect(whyWaiting(facts(given)).ready).toBe(expected.length === 1 && expected[0] === "queued");
  });

  it("answers no reasons for a job that runs or has finished", () => {
    for (const status of ["running", "completed", "failed", "canceled"] as const) {
      expect(whyWaiting(facts({ status }))).toMatchObject({ reasons: [], ready: false, jobs_ahead: null });
    }
  });
});
