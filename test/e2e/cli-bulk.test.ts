// gaffer jobs cancel --all | retry --all and jobs list --failure-reason against a real master
// (API.md §9): filters, the --yes asked for above 100 matching jobs, --dry-run, --json.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runGaffer, spawnMaster, stopAll, type MasterProcess } from "../helpers/processes.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

let master: MasterProcess;
let env: Record<string, string>;
let token = "";

beforeAll(async () => {
  const db = join(tempDir(), "bulk.db");
  const admin = await runGaffer(["clients", "create", "--db", db, "--name", "root", "--role", "admin", "--json"]);
  const creds = JSON.parse(admin.output) as { id: string; client_secret: string };
  master = await spawnMaster(db, { GAFFER_AUTH: "on" });
  env = { GAFFER_MASTER_URL: master.url, GAFFER_CLIENT_ID: creds.id, GAFFER_CLIENT_SECRET: creds.client_secret };
  token = (await runGaffer(["token"], env)).output.trim();
});
afterAll(async () => {
  await stopAll();
  removeTempDirs();
});

const gaffer = (...args: string[]) => runGaffer(args, env);

async function api<T>(method: string, path: string, body?: unknown, bearer = token): Promise<T> {
  const response = await fetch(`${master.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await response.json()) as T;
}

const statuses = async (type: string) =>
  (await api<{ items: { status: string }[] }>("GET", `/api/v1/jobs?type=${type}&limit=500`)).items.map((job) => job.status);

describe("gaffer jobs cancel --all | retry --all", () => {
  it("asks for --yes above 100 matching jobs, counts with --dry-run, acts within --max, and retries by filter", async () => {
    await api("POST", "/api/v1/jobs/batch", { jobs: Array.from({ length: 101 }, (_, n) => ({ type: "cli-bulk", payload: { n } })) });

    const refused = await gaffer("jobs", "cancel", "--all", "--type", "cli-bulk");
    expect(refused.code).toBe(2);
    expect(refused.output).toMatch(/101 jobs match .*--yes/);
    expect((await statuses("cli-bulk")).every((status) => status === "pending")).toBe(true);

    const dry = await gaffer("jobs", "cancel", "--all", "--type", "cli-bulk", "--dry-run", "--json");
    expect(JSON.parse(dry.output)).toEqual({ matched: 101, changed: 101, more: false, dry_run: true });

    const some = await gaffer("jobs", "cancel", "--all", "--type", "cli-bulk", "--status", "pending", "--max", "5", "--json");
    expect(JSON.parse(some.output)).toEqual({ matched: 5, changed: 5, more: true, dry_run: false });

    const rest = await gaffer("jobs", "cancel", "--all", "--type", "cli-bulk", "--yes");
    expect(rest.code).toBe(0);
    expect(rest.output).toMatch(/101 job\(s\) matched, 96 canceled \(5 left as they were/);
    expect((await statuses("cli-bulk")).every((status) => status === "canceled")).toBe(true);

    const retried = await gaffer("jobs", "retry", "--all", "--type", "cli-bulk", "--status", "canceled", "--max", "100");
    expect(retried.output).toMatch(/^100 job\(s\) matched, 100 retried\nmore jobs match/);
    expect((await statuses("cli-bulk")).filter((status) => status === "pending")).toHaveLength(100);
  });

  it("refuses a call that names neither an ID nor --all, --all without a filter, or both", async () => {
    for (const args of [["jobs", "cancel"], ["jobs", "retry", "--all"], ["jobs", "cancel", "some-id", "--all"], ["jobs", "cancel", "some-id", "--type", "x"], ["jobs", "cancel", "--all", "--type", "x", "--max", "0"]]) {
      const result = await gaffer(...args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.output).toMatch(/--all|--max/);
    }
    const wrong = await gaffer("jobs", "cancel", "--all", "--status", "lost");
    expect(wrong.code).toBe(2);
    expect(wrong.output).toMatch(/status/);
  });

  it("lists failed jobs by --failure-reason", async () => {
    const worker = JSON.parse((await gaffer("clients", "create", "--name", "w-bulk", "--role", "worker", "--json")).output) as { id: string; client_secret: string };
    const workerToken = (await runGaffer(["token"], { ...env, GAFFER_CLIENT_ID: worker.id, GAFFER_CLIENT_SECRET: worker.client_secret })).output.trim();
    const job = await api<{ id: string }>("POST", "/api/v1/jobs", { type: "cli-fails" });
    await api("POST", "/api/v1/jobs", { type: "cli-fails" });
    const node = await api<{ id: string }>("POST", "/api/v1/nodes", { name: "bulk-node", capacity: 1, types: ["cli-fails"] }, workerToken);
    const claimed = await api<{ items: { id: string; attempt: number }[] }>("POST", `/api/v1/nodes/${node.id}/claim`, { max: 1 }, workerToken);
    expect(claimed.items[0]?.id).toBe(job.id);
    await api("POST", `/api/v1/jobs/${job.id}/fail`, { node_id: node.id, attempt: 1, error: { message: "no", retryable: false } }, workerToken);
    const listed = await gaffer("jobs", "list", "--type", "cli-fails", "--failure-reason", "non_retryable", "--json");
    expect((JSON.parse(listed.output) as { items: { id: string }[] }).items.map((item) => item.id)).toEqual([job.id]);
  });
});
