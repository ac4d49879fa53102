// Workers that die, and workers cut off from the master.
import { afterEach, describe, expect, it } from "vitest";
import { removeTempDirs } from "../helpers/temp.js";
import { Cluster, FULL } from "./cluster.js";
import { Proxy } from "./proxy.js";

let cluster: Cluster | undefined;
let proxy: Proxy | undefined;
afterEach(async () => {
  await proxy?.stop();
  await cluster?.stopAll();
  proxy = undefined;
  removeTempDirs();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("worker crash", () => {
  const JOBS = FULL ? 600 : 120;
  const KILLS = FULL ? 8 : 3;

  it(`re-runs the jobs of workers killed with -9 elsewhere, loses none and completes none twice (${KILLS} kills)`, async () => {
    cluster = await Cluster.create();
    await cluster.startMaster();
    const names = ["a", "b", "c"];
    for (const name of names) await cluster.startWorker(name, { capacity: 4, minMs: 100, maxMs: 400 });
    const ids = await cluster.submit(JOBS);
    for (let kill = 0; kill < KILLS; kill++) {
      await sleep(700);
      const victim = names[kill % names.length] as string;
      await cluster.killWorker(victim);
      // It comes back under the same name: the same node, which no longer lists the jobs it held.
      await cluster.startWorker(victim, { capacity: 4, minMs: 100, maxMs: 400 });
    }
    await cluster.waitAllCompleted(ids, FULL ? 180_000 : 90_000);
    const verdict = await cluster.verify(ids);
    expect(verdict.integrity).toBe("ok");
    expect(verdict.notCompleted).toEqual([]);
    expect(verdict.completedTwice).toEqual([]);
    const runs = cluster.executions();
    const rerun = [...runs.values()].filter((executions) => executions.length > 1).length;
    const reassigned = cluster.read<{ n: number }>("SELECT COUNT(*) AS n FROM audit_log WHERE event_type = 'job.reassigned'")[0]?.n ?? 0;
    console.log(`[faults] worker crash: ${JOBS} jobs, ${KILLS} kill -9, ${reassigned} jobs reassigned, ${rerun} jobs run more than once`);
    expect(reassigned).toBeGreaterThan(0);
  }, 600_000);
});

describe("partition", () => {
  it("reassigns the jobs of a worker cut off past the node timeout, refuses its stale results, and lets it carry on", async () => {
    cluster = await Cluster.create();
    await cluster.startMaster();
    proxy = new Proxy(cluster.port);
    await proxy.start();
    // The island reaches the master only through the proxy; its jobs run for 4 s.
    await cluster.startWorker("island", { capacity: 2, minMs: 4000, maxMs: 4000, masterUrl: proxy.url });
    const [stranded] = await cluster.submit(1, { prefix: "stranded" });
    if (!stranded) throw new Error("no job");
    // Cut the island off once it really runs the job (not while the claim's answer is on its way).
    await waitFor(async () => (cluster?.executions().get(stranded) ?? []).some((run) => run.worker === "island"));
    proxy.cut();
    // Another worker, on the mainland, takes the job once the island's node timeout (2 s) has passed.
    await cluster.startWorker("mainland", { capacity: 2, minMs: 10, maxMs: 20 });
    await cluster.waitAllCompleted([stranded], 20_000);
    const job = cluster.read<{ attempt: number; node_id: string }>("SELECT attempt, node_id FROM jobs WHERE id = ?", stranded)[0];
    const mainland = cluster.read<{ id: string }>("SELECT id FROM nodes WHERE name = 'mainland'")[0];
    expect(job).toMatchObject({ attempt: 2, node_id: mainland?.id });
    // Its lease may run out a sweep or two before the island is declared dead (the sweep
    // allows for last_heartbeat lagging by a tenth of the node timeout): dead soon after.
    const island = () => cluster?.read<{ status: string }>("SELECT status FROM nodes WHERE name = 'island'")[0]?.status;
    await waitFor(async () => island() === "dead", 5_000);
    // The island finished its copy meanwhile; when the network heals its result is refused as stale.
    await sleep(2500);
    proxy.heal();
    await waitFor(async () => /"event":"result.refused".*stale_attempt|"event":"job.cancel"/.test(cluster?.workerOutput("island") ?? ""), 20_000);
    const verdict = await cluster.verify([stranded]);
    expect(verdict.completedTwice).toEqual([]);
    // ...and it carries on with new work: it is revived and takes a job only it can see first.
    await cluster.killWorker("mainland");
    const later = await cluster.submit(3, { prefix: "later" });
    await cluster.waitAllCompleted(later, 30_000);
    expect(cluster.read<{ status: string }>("SELECT status FROM nodes WHERE name = 'island'")[0]?.status).toBe("online");
    expect(cluster.workerOutput("island")).toMatch(new RegExp(`"event":"job.completed","jobId":"${later[0]}"`));
  }, 120_000);
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(100);
  }
}
