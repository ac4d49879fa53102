// The master's ceiling for the drain with and without GAFFER_STORE_THREAD, with the machine's
// cores to itself: no workers and no load generator on them. `--loops` callers each claim 100
// jobs and report them by 200 through the store (in process, or on its thread), and pay for
// each request on the event loop what HTTP costs it: the body's JSON.parse, the answer's
// JSON (a claim's made as the route makes it: claimAnswer) and `--spin` µs of other work (Node's HTTP, Express, auth, zod, metrics:
// about 1 ms a drain request, bench/README "15:25–15:54"). In turns, `--rounds` of each.
// Run: node dist/bench/store-thread.js [--spin US] [--loops N] [--rounds N] [--jobs N]
import { join } from "node:path";
import { createQueuePolicy } from "../master/queue/policy.js";
import { openSqliteStore } from "../master/store/sqlite/index.js";
import { openThreadStore } from "../master/store/thread/client.js";
import { systemClock, type Store, type TakenJob } from "../master/store/types.js";
import { claimAnswer } from "../master/http/claim-answer.js";
import { cleanTempDirs, tempDir } from "./lib.js";
import { benchJob } from "./scenarios/store.js";

const arg = (flag: string, fallback: number) => {
  const at = process.argv.indexOf(flag);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const SPIN_US = arg("--spin", 1000);
const LOOPS = arg("--loops", 8);
const ROUNDS = arg("--rounds", 2);
const JOBS = arg("--jobs", 20_000);
const POLICY = { retryDelayS: 5, retryMaxDelayS: 300, stallGraceS: 300, agingS: 300, nodeTimeoutS: 60 };

async function open(thread: boolean): Promise<Store> {
  const path = join(tempDir(), "store-thread.db");
  if (thread) return openThreadStore({ path, synchronous: "full", policy: POLICY });
  return openSqliteStore({
    path,
    synchronous: "full",
    clock: systemClock,
    policy: createQueuePolicy(POLICY),
    backgroundCheckpoints: true,
    readerThread: true,
    syncOffThread: true,
  });
}

/** The rest of a request's cost on the event loop. */
function spin(us: number): void {
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
}

/** One drain of JOBS: jobs a second and the process's CPU a job (all its threads). */
async function drain(store: Store): Promise<{ rate: number; cpuUs: number }> {
  for (let i = 0; i < JOBS; i += 1000) await store.jobs.submit(Array.from({ length: Math.min(1000, JOBS - i) }, () => benchJob()), { batch: true });
  await store.durable();
  const nodes = [];
  for (let i = 0; i < LOOPS; i++) {
    const registered = await store.nodes.register({ clientId: "bench", name: `n${i}-${Math.random()}`, labels: [], capacity: 100_000, types: null, version: null, hardware: {} });
    nodes.push(registered.node);
  }
  const cpu = process.cpuUsage();
  const started = performance.now();
  let left = JOBS;
  await Promise.all(
    nodes.map(async (node) => {
      let held: TakenJob[] = [];
      while (left > 0 || held.length > 0) {
        JSON.parse('{"max":100}');
        spin(SPIN_US);
        const claimed = await store.jobs.claim({ nodeId: node.id, max: 100 });
        await store.durable();
        if (!claimed.ok) throw new Error(`claim refused: ${claimed.reason}`);
        claimAnswer(claimed.items);
        held.push(...claimed.items);
        if (held.length >= 200 || (claimed.items.length === 0 && held.length > 0)) {
          const body = JSON.stringify({ results: held.map((j) => ({ job_id: j.id, attempt: j.attempt, status: "completed", result: { ok: true } })) });
          const parsed = JSON.parse(body) as { results: { job_id: string; attempt: number; result: unknown }[] };
          spin(SPIN_US);
          const reports = parsed.results.map((r) => ({ jobId: r.job_id, attempt: r.attempt, status: "completed" as const, result: r.result }));
          JSON.stringify(await store.jobs.report({ nodeId: node.id, reports }));
          await store.durable();
          left -= held.length;
          held = [];
        } else if (claimed.items.length === 0) {
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return { rate: JOBS / ((performance.now() - started) / 1000), cpuUs: (used.user + used.system) / JOBS };
}

try {
  process.stdout.write(`store in process / on its thread: ${LOOPS} callers, ${SPIN_US} µs of event-loop work a request, ${JOBS} jobs a drain\n`);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const thread of [false, true]) {
      const store = await open(thread);
      try {
        await drain(store); // warm-up, not counted
        const { rate, cpuUs } = await drain(store);
        process.stdout.write(`round ${round}, ${thread ? "on its thread" : "in process  "}: ${Math.round(rate)} jobs/s, ${cpuUs.toFixed(1)} µs of CPU a job\n`);
      } finally {
        await store.close();
      }
    }
  }
} finally {
  cleanTempDirs();
}
