// The Worker's claim loops against a scripted master on 127.0.0.1 that counts a job as the
// node's until its result is answered for (API.md §6): the extra loops ask only for what it
// would hand out, and claim again once results are answered for, accepted or refused.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Worker } from "../../worker/index.js";
import { turn } from "../helpers/flushes.js";
import { eventually } from "../helpers/processes.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

const CAPACITY = 3;

interface Claim {
  max: number;
  waitS: number;
  /** Jobs the master counted as the node's when the claim came. */
  outstanding: number;
}

/**
 * A master with `jobs` queued. A claim gets what the node has room for; a long poll with
 * nothing to get waits until the master closes (it is never served later: only the worker's
 * own extra loops can take work once room is made). Results wait for `answerResults`.
 */
function fakeMaster(jobs: number) {
  const queue = Array.from({ length: jobs }, (_, i) => `j${i}`);
  const claims: Claim[] = [];
  const parked: ServerResponse[] = [];
  const heldResults: { res: ServerResponse; count: number }[] = [];
  /** The job ids of each results call, as they came. */
  const received: string[][] = [];
  let outstanding = 0;
  /** Results are answered as they come (the test is over). */
  let answering = false;
  let handedOut = 0;
  const reply = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": status >= 400 ? "application/problem+json" : "application/json" });
    res.end(JSON.stringify(body));
  };
  /** Answer every result waiting: accepted (200) or refused for good (403). */
  const answerResults = (status: 200 | 403) => {
    for (const { res, count } of heldResults.splice(0)) {
      outstanding -= count;
      if (status === 200) reply(res, 200, { items: Array.from({ length: count }, () => ({ job_id: "x", accepted: true })) });
      else reply(res, 403, { type: "about:blank", title: "Forbidden", status: 403, code: "forbidden", detail: "not your node" });
    }
  };
  const route = (req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>) => {
    const path = req.url ?? "";
    if (path === "/api/v1/nodes") return reply(res, 201, { id: "n1", name: "fake", labels: [], types: null, capacity: CAPACITY });
    if (path.endsWith("/heartbeat")) return reply(res, 200, { status: "online", heartbeat_interval_s: 60, cancel: [] });
    if (path.endsWith("/deregister")) return reply(res, 200, { id: "n1" });
    if (path.endsWith("/results")) {
      const results = body.results as { job_id: string }[];
      received.push(results.map((result) => result.job_id));
      heldResults.push({ res, count: results.length });
      if (answering) answerResults(200);
      return;
    }
    if (path.endsWith("/claim")) {
      const max = body.max as number;
      const waitS = body.wait_s as number;
      claims.push({ max, waitS, outstanding });
      const give = Math.max(0, Math.min(max, queue.length, CAPACITY - outstanding));
      if (give === 0 && waitS > 0) return void parked.push(res);
      const items = queue.splice(0, give).map((id) => ({ id, type: "work", payload: {}, attempt: 1, timeout_s: 60, priority: "medium" }));
      outstanding += give;
      handedOut += give;
      return reply(res, 200, { items });
    }
    reply(res, 404, { type: "about:blank", title: "Not Found", status: 404, code: "not_found", detail: path });
  };
  const server: Server = createServer((req, res) => {
    let text = "";
    req.on("data", (chunk: Buffer) => (text += chunk.toString()));
    req.on("end", () => route(req, res, text === "" ? {} : (JSON.parse(text) as Record<string, unknown>)));
  });
  return {
    server,
    claims,
    received,
    get handedOut() {
      return handedOut;
    },
    get resultsWaiting() {
      return heldResults.reduce((sum, held) => sum + held.count, 0);
    },
    answerResults,
    answerFromNowOn() {
      answering = true;
      answerResults(200);
    },
    async listen(): Promise<string> {
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
    async close(): Promise<void> {
      for (const res of parked.splice(0)) reply(res, 200, { items: [] });
      answerResults(200);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
  removeTempDirs();
});

/** A worker whose jobs end one at a time, when `finishNext()` is called. */
async function startWorker(masterUrl: string) {
  const gates: (() => void)[] = [];
  const worker = new Worker({
    masterUrl,
    name: "fake",
    capacity: CAPACITY,
    handlers: { work: () => new Promise<void>((resolve) => gates.push(resolve)) },
    stateDir: tempDir(),
    claimWaitS: 30,
    graceS: 0,
    logger: pino({ level: "silent" }),
  });
  await worker.start();
  cleanup.push(() => worker.stop());
  // Before the stop: jobs end, results are answered for (else the final flush waits on them).
  cleanup.push(async () => {
    for (const gate of gates.splice(0)) gate();
    await Promise.resolve();
  });
  return {
    worker,
    running: () => gates.length,
    finishNext: () => gates.shift()?.(),
  };
}

describe("worker claim loops", () => {
  for (const status of [200, 403] as const) {
    it(`ask for no more than capacity − running − unacknowledged, and claim again once results are answered for (${status})`, async () => {
      const master = fakeMaster(10);
      const url = await master.listen();
      cleanup.push(() => master.close());
      const { worker, finishNext, running } = await startWorker(url);
      cleanup.push(async () => master.answerFromNowOn());
      // The first claim is full: a backlog, so the extra loops take part.
      await eventually(async () => running() === CAPACITY, 10_000, "the first jobs");
      // Jobs end one at a time, each result waiting for the master's answer.
      finishNext();
      await eventually(async () => master.resultsWaiting === 1, 10_000, "the first result");
      for (let done = 2; done <= CAPACITY; done++) {
        finishNext();
        await eventually(async () => worker.runningJobs === CAPACITY - done, 10_000, `job ${done}`);
        await turn();
      }
      expect(master.handedOut).toBe(CAPACITY);
      for (const claim of master.claims.filter((c) => c.waitS === 0)) expect(claim.max).toBeLessThanOrEqual(CAPACITY - claim.outstanding);
      // Answered for: room again, which only the worker's extra loops see (the long poll is never served).
      // (The worker sends its results a call at a time: each answered as it comes.)
      await eventually(
        async () => {
          master.answerResults(status);
          return master.handedOut > CAPACITY;
        },
        10_000,
        "a claim after the results were answered for",
      );
      for (const claim of master.claims.filter((c) => c.waitS === 0)) expect(claim.max).toBeLessThanOrEqual(CAPACITY - claim.outstanding);
    });
  }
});

describe("worker outbox", () => {
  it("sends again, from its next start, the results it wrote and sent but never saw answered (a crash in between)", async () => {
    const master = fakeMaster(CAPACITY);
    const url = await master.listen();
    cleanup.push(() => master.close());
    const stateDir = tempDir();
    const options = {
      masterUrl: url,
      name: "fake",
      capacity: CAPACITY,
      handlers: { work: async () => "done" },
      stateDir,
      claimWaitS: 30,
      graceS: 0,
      logger: pino({ level: "silent" }),
    };
    const crashed = new Worker(options);
    await crashed.start();
    // Every result written and sent; the master holds its answer.
    await eventually(async () => master.resultsWaiting === CAPACITY, 10_000, "the results sent");
    await crashed.kill();
    const sent = master.received.flat().sort();
    expect(sent).toEqual(["j0", "j1", "j2"]);
    const calls = master.received.length;
    const next = new Worker(options);
    await next.start();
    // Cleaned up in reverse: the master answers, then the worker stops.
    cleanup.push(() => next.stop());
    cleanup.push(async () => master.answerFromNowOn());
    await eventually(async () => master.received.length > calls, 10_000, "the results sent again");
    expect(master.received.slice(calls).flat().sort()).toEqual(sent);
  });
});
