// The command line against a real master: every command of API.md §9, tables and --json, exit codes.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runGaffer, spawnMaster, stopAll, freePort, type MasterProcess } from "../helpers/processes.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

let master: MasterProcess;
let env: Record<string, string>;
let db: string;

beforeAll(async () => {
  db = join(tempDir(), "cli.db");
  const admin = await runGaffer(["clients", "create", "--db", db, "--name", "root", "--role", "admin", "--json"]);
  const creds = JSON.parse(admin.output) as { id: string; client_secret: string };
  master = await spawnMaster(db, { GAFFER_AUTH: "on" });
  env = { GAFFER_MASTER_URL: master.url, GAFFER_CLIENT_ID: creds.id, GAFFER_CLIENT_SECRET: creds.client_secret };
});
afterAll(async () => {
  await stopAll();
  removeTempDirs();
});

const gaffer = (...args: string[]) => runGaffer(args, env);
const json = <T>(output: string): T => JSON.parse(output) as T;

describe("gaffer jobs", () => {
  it("submits, lists, shows, re-prioritises, cancels, retries and shows events", async () => {
    const submitted = await gaffer("jobs", "submit", "--type", "cli", "--payload", '{"n":1}', "--priority", "low", "--tag", "team=ops", "--requires", "nowhere", "--json");
    expect(submitted.code).toBe(0);
    const job = json<{ id: string; status: string; tags: Record<string, string> }>(submitted.output);
    expect(job).toMatchObject({ status: "pending", tags: { team: "ops" } });
    const table = await gaffer("jobs", "list", "--type", "cli");
    expect(table.output.split("\n")[0]).toMatch(/^ID\s+TYPE\s+PRIORITY\s+STATUS/);
    expect(table.output).toContain(job.id);
    expect((await gaffer("jobs", "get", job.id)).output).toMatch(/status\s+pending/);
    expect(json<{ priority: string }>((await gaffer("jobs", "priority", job.id, "high", "--json")).output).priority).toBe("high");
    expect((await gaffer("jobs", "cancel", job.id)).output).toMatch(/status\s+canceled/);
    expect((await gaffer("jobs", "retry", job.id)).output).toMatch(/status\s+pending/);
    const events = await gaffer("jobs", "events", job.id, "--json");
    expect(json<{ items: { event_type: string }[] }>(events.output).items.map((e) => e.event_type)).toEqual([
      "job.submitted",
      "job.priority_changed",
      "job.canceled",
      "job.retried",
    ]);
  });

  it("says that a running job it cancels was asked to stop, and keeps --json as the API answers", async () => {
    const worker = json<{ id: string; client_secret: string }>((await gaffer("clients", "create", "--name", "w-cancel", "--role", "worker", "--json")).output);
    const workerToken = (await runGaffer(["token"], { ...env, GAFFER_CLIENT_ID: worker.id, GAFFER_CLIENT_SECRET: worker.client_secret })).output.trim();
    const asWorker = (path: string, body: unknown) =>
      fetch(`${master.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${workerToken}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    const node = (await (await asWorker("/api/v1/nodes", { name: "cancel-node", capacity: 2, types: ["cli-cancel"] })).json()) as { id: string };
    const ids: string[] = [];
    for (let n = 0; n < 2; n++) ids.push(json<{ id: string }>((await gaffer("jobs", "submit", "--type", "cli-cancel", "--json")).output).id);
    const claimed = (await (await asWorker(`/api/v1/nodes/${node.id}/claim`, { max: 2 })).json()) as { items: { id: string }[] };
    expect(claimed.items.map((job) => job.id).sort()).toEqual([...ids].sort());
    const [first, second] = ids as [string, string];
    const canceled = await gaffer("jobs", "cancel", first);
    expect(canceled.code).toBe(0);
    expect(canceled.output).toMatch(/status\s+running/);
    expect(canceled.output).toContain(`cancel requested: job ${first} is running; its node is told to stop it`);
    const asJson = json<{ status: string; cancel_requested: boolean }>((await gaffer("jobs", "cancel", second, "--json")).output);
    expect(asJson).toMatchObject({ status: "running", cancel_requested: true });
  });

  it("exits with codes that mean something", async () => {
    expect((await gaffer("jobs", "get", "no-such-job")).code).toBe(3);
    const finished = json<{ id: string }>((await gaffer("jobs", "submit", "--type", "x", "--json")).output);
    await gaffer("jobs", "cancel", finished.id);
    const conflict = await gaffer("jobs", "cancel", finished.id);
    expect(conflict.code).toBe(4);
    expect(conflict.output).toMatch(/409 conflict/);
    const badJson = await gaffer("jobs", "submit", "--type", "x", "--payload", "{oops");
    expect(badJson.code).toBe(2);
    expect(badJson.output).toMatch(/--payload is not valid JSON/);
    const invalid = await gaffer("jobs", "submit", "--type", "bad type");
    expect(invalid.code).toBe(2);
    expect(invalid.output).toMatch(/type/);
    const badChoice = await gaffer("jobs", "submit", "--type", "x", "--priority", "urgent");
    expect(badChoice.code).toBe(2);
    const unreachable = await runGaffer(["jobs", "list"], { ...env, GAFFER_MASTER_URL: `http://127.0.0.1:${await freePort()}` });
    expect(unreachable.code).toBe(5);
    const waited = await gaffer("jobs", "submit", "--type", "nobody-runs-this", "--requires", "nowhere", "--wait", "--wait-timeout-s", "0.5");
    expect(waited.code).toBe(6);
  });

  it("answers --help on every command", async () => {
    for (const command of [[], ["jobs"], ["jobs", "submit"], ["nodes", "list"], ["schedules", "create"], ["worker", "start"], ["master", "start"], ["backup"], ["restore"], ["stats"]]) {
      const help = await runGaffer([...command, "--help"]);
      expect(help.code, command.join(" ")).toBe(0);
      expect(help.output).toMatch(/Usage: gaffer/);
    }
  });
});

describe("gaffer's error messages", () => {
  const count = (text: string, part: string) => text.split(part).length - 1;

  it("says an unreachable master once", async () => {
    const unreachable = await runGaffer(["jobs", "list"], { ...env, GAFFER_MASTER_URL: `http://127.0.0.1:${await freePort()}` });
    expect(unreachable.code).toBe(5);
    expect(count(unreachable.output, "cannot reach the master")).toBe(1);
  });

  it("says a bad cron expression's message once", async () => {
    const bad = await gaffer("schedules", "create", "--name", "bad-once", "--cron", "not a cron", "--type", "x");
    expect(bad.code).toBe(2);
    expect(count(bad.output, "not a valid cron expression")).toBe(1);
  });

  it("says which variables or flags to set when credentials are missing, half given or refused", async () => {
    const none = await runGaffer(["jobs", "list"], { GAFFER_MASTER_URL: master.url });
    expect(none.code).toBe(2);
    expect(none.output).toMatch(/401/);
    for (const name of ["GAFFER_TOKEN", "GAFFER_CLIENT_ID", "GAFFER_CLIENT_SECRET", "--client-id", "--client-secret"]) expect(none.output).toContain(name);
    expect(none.output).not.toMatch(/send Authorization/);
    const half = await runGaffer(["stats"], { GAFFER_MASTER_URL: master.url, GAFFER_CLIENT_ID: env.GAFFER_CLIENT_ID ?? "" });
    expect(half.code).toBe(2);
    expect(half.output).toMatch(/no secret: set GAFFER_CLIENT_SECRET or pass --client-secret/);
    const wrong = await runGaffer(["stats"], { ...env, GAFFER_CLIENT_SECRET: "gsk_wrong" });
    expect(wrong.code).toBe(2);
    expect(wrong.output).toContain(`refused client ${env.GAFFER_CLIENT_ID}`);
    const badToken = await runGaffer(["stats"], { GAFFER_MASTER_URL: master.url, GAFFER_TOKEN: "not-a-token" });
    expect(badToken.code).toBe(2);
    expect(badToken.output).toMatch(/refused GAFFER_TOKEN/);
  });

  it("answers a typo of a command or a subcommand the same way: the hint and where the help is", async () => {
    const command = await runGaffer(["jbos"]);
    expect(command.code).toBe(2);
    expect(command.output).toMatch(/Did you mean jobs\?/);
    expect(command.output).toContain("Run 'gaffer --help' for usage.");
    expect(command.output).not.toMatch(/Commands:/);
    const subcommand = await runGaffer(["jobs", "lsit"]);
    expect(subcommand.code).toBe(2);
    expect(subcommand.output).toMatch(/Did you mean list\?/);
    expect(subcommand.output).toContain("Run 'gaffer jobs --help' for usage.");
    expect(subcommand.output).not.toMatch(/Commands:/);
    const option = await runGaffer(["jobs", "submit"]);
    expect(option.code).toBe(2);
    expect(option.output).toMatch(/required option '--type <type>' not specified/);
    expect(option.output).toContain("Run 'gaffer jobs submit --help' for usage.");
  });
});

describe("the token cache", () => {
  /** A new client of its own, so that its tokens are only the ones this test makes. */
  async function newClient(name: string) {
    const client = json<{ id: string; client_secret: string }>((await gaffer("clients", "create", "--name", name, "--role", "client", "--json")).output);
    const cache = tempDir();
    const clientEnv = { GAFFER_MASTER_URL: master.url, GAFFER_CLIENT_ID: client.id, GAFFER_CLIENT_SECRET: client.client_secret, GAFFER_CACHE_DIR: cache };
    return { client, cache, clientEnv };
  }
  async function tokensOf(clientId: string): Promise<{ id: string; revoked_at: string | null }[]> {
    const admin = (await gaffer("token")).output.trim();
    const response = await fetch(`${master.url}/api/v1/tokens?client_id=${clientId}`, { headers: { authorization: `Bearer ${admin}` } });
    return ((await response.json()) as { items: { id: string; revoked_at: string | null }[] }).items;
  }
  const cacheFiles = (cache: string) => readdirSync(join(cache, "tokens")).map((name) => join(cache, "tokens", name));

  it("signs in once for commands in a row, in a file only the user can read that holds no secret", async () => {
    const { client, cache, clientEnv } = await newClient("cache-twice");
    expect((await runGaffer(["stats"], clientEnv)).code).toBe(0);
    expect((await runGaffer(["jobs", "list"], clientEnv)).code).toBe(0);
    const token = (await runGaffer(["token"], clientEnv)).output.trim();
    expect(await tokensOf(client.id)).toHaveLength(1);
    const [file] = cacheFiles(cache);
    if (!file) throw new Error("no cache file");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, "utf8");
    expect(text).toContain(token);
    expect(text).not.toContain(client.client_secret);
    expect(json<{ expires_at: string }>(text).expires_at).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it("replaces a cached token the master refuses, without a word", async () => {
    const { client, cache, clientEnv } = await newClient("cache-revoked");
    const first = (await runGaffer(["token"], clientEnv)).output.trim();
    expect((await fetch(`${master.url}/api/v1/auth/revoke`, { method: "POST", headers: { authorization: `Bearer ${first}` } })).status).toBe(200);
    const after = await runGaffer(["jobs", "list", "--json"], clientEnv);
    expect(after.code).toBe(0);
    expect(json<{ items: unknown[] }>(after.output).items).toEqual([]);
    const [file] = cacheFiles(cache);
    const second = json<{ access_token: string }>(readFileSync(file ?? "", "utf8")).access_token;
    expect(second).not.toBe(first);
    expect((await runGaffer(["token"], clientEnv)).output.trim()).toBe(second);
    expect(await tokensOf(client.id)).toHaveLength(2);
  });

  it("writes nothing when GAFFER_TOKEN is given, and lives under XDG_CACHE_HOME/gaffer without GAFFER_CACHE_DIR", async () => {
    const { cache, clientEnv } = await newClient("cache-xdg");
    const token = (await runGaffer(["token"], { ...clientEnv, GAFFER_CACHE_DIR: "", XDG_CACHE_HOME: cache })).output.trim();
    expect(readdirSync(join(cache, "gaffer", "tokens"))).toHaveLength(1);
    const other = tempDir();
    expect((await runGaffer(["stats"], { ...clientEnv, GAFFER_TOKEN: token, GAFFER_CACHE_DIR: other })).code).toBe(0);
    expect(readdirSync(other)).toEqual([]);
  });
});

describe("gaffer nodes, schedules, stats, state, token", () => {
  it("lists, drains and resumes nodes", async () => {
    const worker = json<{ id: string; client_secret: string }>((await gaffer("clients", "create", "--name", "w", "--role", "worker", "--json")).output);
    const token = (await runGaffer(["token"], { ...env, GAFFER_CLIENT_ID: worker.id, GAFFER_CLIENT_SECRET: worker.client_secret })).output.trim();
    const node = await fetch(`${master.url}/api/v1/nodes`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "cli-node", labels: ["a", "b"], capacity: 3 }),
    });
    const nodeId = ((await node.json()) as { id: string }).id;
    const listed = await gaffer("nodes", "list");
    expect(listed.output).toMatch(/cli-node\s+online\s+0\s+3\s+\["a","b"\]/);
    expect((await gaffer("nodes", "drain", nodeId)).output).toMatch(/status\s+draining/);
    expect((await gaffer("nodes", "resume", nodeId)).output).toMatch(/status\s+online/);
    expect((await gaffer("nodes", "drain", "nope")).code).toBe(3);
  });

  it("pauses, limits, lists and resumes a job type", async () => {
    expect((await gaffer("jobs", "submit", "--type", "cli-typed", "--json")).code).toBe(0);
    expect((await gaffer("types", "pause", "cli-typed")).output).toMatch(/paused\s+true/);
    expect((await gaffer("types", "limit", "cli-typed", "4")).output).toMatch(/max_running\s+4/);
    expect((await gaffer("types", "list")).output).toMatch(/^cli-typed\s+true\s+4\s+1\s+0\s+0\s+0$/m);
    expect((await gaffer("types", "limit", "cli-typed", "none")).output).toMatch(/max_running\s+-/);
    expect((await gaffer("types", "resume", "cli-typed")).output).toMatch(/paused\s+false/);
    const bad = await gaffer("types", "limit", "cli-typed", "many");
    expect(bad.code).toBe(2);
    expect(bad.output).toContain("the limit must be a whole number or none, not many");
  });

  it("creates, lists, shows and deletes schedules", async () => {
    const created = await gaffer("schedules", "create", "--name", "nightly", "--cron", "0 3 * * *", "--timezone", "Europe/Berlin", "--type", "report", "--payload", '{"a":1}', "--json");
    expect(created.code).toBe(0);
    const schedule = json<{ id: string; next_run_at: string }>(created.output);
    expect(schedule.next_run_at).toMatch(/T0[12]:00:00.000Z$/);
    expect((await gaffer("schedules", "list")).output).toMatch(/nightly\s+0 3 \* \* \*\s+Europe\/Berlin\s+true/);
    expect((await gaffer("schedules", "list")).output).toMatch(/LAST_SKIPPED_AT\s+LAST_SKIP_REASON$/m);
    const shown = (await gaffer("schedules", "get", schedule.id)).output;
    expect(shown).toMatch(/^name\s+nightly$/m);
    expect(shown).toMatch(/^last_skip_reason\s+-$/m);
    const bad = await gaffer("schedules", "create", "--name", "bad", "--cron", "not a cron", "--type", "x");
    expect(bad.code).toBe(2);
    expect(bad.output).toMatch(/cron/);
    const disabled = await gaffer("schedules", "update", schedule.id, "--disable", "--cron", "30 4 * * *", "--json");
    expect(disabled.code).toBe(0);
    expect(json(disabled.output)).toMatchObject({ cron: "30 4 * * *", enabled: false, next_run_at: null });
    const enabled = await gaffer("schedules", "update", schedule.id, "--enable", "--timezone", "UTC", "--json");
    expect(json(enabled.output)).toMatchObject({ enabled: true, timezone: "UTC", next_run_at: expect.stringMatching(/T04:30:00.000Z$/) });
    expect((await gaffer("schedules", "update", schedule.id, "--cron", "not a cron")).code).toBe(2);
    expect((await gaffer("schedules", "update", schedule.id)).code).toBe(2);
    expect((await gaffer("schedules", "delete", schedule.id)).code).toBe(0);
    expect((await gaffer("schedules", "delete", schedule.id)).code).toBe(3);
  });

  it("shows stats and state, and sets the mode", async () => {
    const stats = await gaffer("stats");
    expect(stats.output).toMatch(/BLOCKED\s+SCHEDULED\s+PENDING\s+RUNNING\s+COMPLETED\s+FAILED\s+CANCELED/);
    expect(json<{ jobs: Record<string, number> }>((await gaffer("stats", "--json")).output).jobs).toHaveProperty("pending");
    expect((await gaffer("state")).output).toMatch(/mode\s+normal/);
    expect((await gaffer("state", "mode", "paused")).output).toBe("mode paused\n");
    expect(json<{ mode: string }>((await gaffer("state", "--json")).output).mode).toBe("paused");
    expect((await gaffer("state", "mode", "normal")).code).toBe(0);
    expect((await gaffer("state", "mode", "sideways")).code).toBe(2);
  });

  it("prints a token that works with curl-style calls", async () => {
    const token = (await gaffer("token")).output.trim();
    const response = await fetch(`${master.url}/api/v1/queue/stats`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
  });
});
