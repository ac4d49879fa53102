// Backups while the master runs, restores that check the hash, and a corrupt database refused at start.
import { execFileSync } from "node:child_process";
import { existsSync, openSync, readFileSync, writeSync, closeSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { http } from "../helpers/master.js";
import { runGaffer, spawnMaster, stopAll } from "../helpers/processes.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

afterEach(async () => {
  await stopAll();
  removeTempDirs();
});

describe("gaffer backup and restore", () => {
  it("backs up while jobs are being submitted, and the restored copy serves them", async () => {
    const dir = tempDir();
    const db = join(dir, "live.db");
    const master = await spawnMaster(db);
    const ids: string[] = [];
    let submitting = true;
    const writer = (async () => {
      while (submitting) {
        const job = await http(master.url, "POST", "/api/v1/jobs", { type: "kept", payload: { n: ids.length } });
        ids.push(String(job.body.id));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const backup = join(dir, "copy.db");
    const result = await runGaffer(["backup", backup, "--db", db, "--json"]);
    submitting = false;
    await writer;
    expect(result.code).toBe(0);
    const info = JSON.parse(result.output) as { sha256: string; bytes: number };
    expect(readFileSync(`${backup}.sha256`, "utf8")).toBe(`${info.sha256}  copy.db\n`);
    expect(execFileSync("sha256sum", ["-c", "copy.db.sha256"], { cwd: dir, encoding: "utf8" })).toMatch(/copy.db: OK/);

    const restored = join(dir, "restored.db");
    const restore = await runGaffer(["restore", backup, "--db", restored]);
    expect(restore.code).toBe(0);
    const second = await spawnMaster(restored);
    const stats = await http<{ jobs: { pending: number } }>(second.url, "GET", "/api/v1/queue/stats");
    expect(stats.body.jobs.pending).toBeGreaterThan(0);
    expect(stats.body.jobs.pending).toBeLessThanOrEqual(ids.length);
    expect((await http(second.url, "GET", `/api/v1/jobs/${ids[0]}`)).status).toBe(200);
  });

  it("refuses a backup whose SHA-256 does not match, and a database a master is using", async () => {
    const dir = tempDir();
    const db = join(dir, "m.db");
    const master = await spawnMaster(db);
    await http(master.url, "POST", "/api/v1/jobs", { type: "x" });
    const backup = join(dir, "b.db");
    expect((await runGaffer(["backup", backup, "--db", db])).code).toBe(0);
    const inUse = await runGaffer(["restore", backup, "--db", db]);
    expect(inUse.code).toBe(1);
    expect(inUse.output).toMatch(/in use/);
    const fd = openSync(backup, "r+");
    writeSync(fd, Buffer.from("tampered"), 0, 8, 5000);
    closeSync(fd);
    const tampered = await runGaffer(["restore", backup, "--db", join(dir, "new.db")]);
    expect(tampered.code).toBe(1);
    expect(tampered.output).toMatch(/SHA-256/);
    const missing = await runGaffer(["restore", join(dir, "nothing.db"), "--db", join(dir, "new.db")]);
    expect(missing.code).toBe(1);
  });
});

describe("gaffer backup and restore on PostgreSQL", () => {
  const url = "postgres://gaffer:s3cret-pw@127.0.0.1:5432/gaffer";

  it("points to pg_dump and pg_basebackup instead of failing on a SQLite file, and writes nothing", async () => {
    const dir = tempDir();
    const out = join(dir, "copy.db");
    for (const run of [runGaffer(["backup", out], { GAFFER_DATABASE_URL: url }), runGaffer(["backup", out, "--database-url", url])]) {
      const refused = await run;
      expect(refused.code).toBe(2);
      expect(refused.output).toMatch(/PostgreSQL/);
      expect(refused.output).toMatch(/pg_dump/);
      expect(refused.output).toMatch(/pg_basebackup/);
      expect(refused.output).not.toMatch(/s3cret-pw|no database at/);
    }
    expect(existsSync(out)).toBe(false);
  });

  it("points to pg_restore for a restore", async () => {
    const dir = tempDir();
    const refused = await runGaffer(["restore", join(dir, "in.db"), "--database-url", url]);
    expect(refused.code).toBe(2);
    expect(refused.output).toMatch(/pg_restore/);
    expect(refused.output).not.toMatch(/s3cret-pw/);
    const unnamed = await runGaffer(["restore", join(dir, "in.db")], { GAFFER_DATABASE_URL: url });
    expect(unnamed.output).toMatch(/pg_restore/);
  });

  it("still backs up the SQLite file named with --db when the environment names PostgreSQL", async () => {
    const dir = tempDir();
    const db = join(dir, "m.db");
    const master = await spawnMaster(db);
    await http(master.url, "POST", "/api/v1/jobs", { type: "x" });
    const backup = await runGaffer(["backup", join(dir, "b.db"), "--db", db], { GAFFER_DATABASE_URL: url });
    expect(backup.code).toBe(0);
    expect(existsSync(join(dir, "b.db.sha256"))).toBe(true);
  });
});

describe("a corrupt database", () => {
  it("is refused at start with a clear message", async () => {
    const dir = tempDir();
    const db = join(dir, "m.db");
    const master = await spawnMaster(db);
    await http(master.url, "POST", "/api/v1/jobs/batch", { jobs: Array.from({ length: 200 }, (_, i) => ({ type: "fill", payload: { i, pad: "p".repeat(500) } })) });
    master.proc.kill("SIGTERM");
    await master.exited;
    // Scribble over the header of a b-tree page in the middle of the file.
    const fd = openSync(db, "r+");
    writeSync(fd, Buffer.alloc(200, 0xab), 0, 200, 4096 * 5);
    closeSync(fd);
    const refused = await runGaffer(["master", "start", "--db", db, "--port", "0"], { GAFFER_AUTH: "off" });
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(/corrupt/);
    expect(refused.output).toMatch(/gaffer restore/);
    const garbage = join(dir, "garbage.db");
    writeFileSync(garbage, "this is not a database at all, just text that is long enough to look like a header....");
    const notDb = await runGaffer(["master", "start", "--db", garbage, "--port", "0"], { GAFFER_AUTH: "off" });
    expect(notDb.code).toBe(1);
    expect(notDb.output).toMatch(/not a SQLite database|corrupt/);
  });
});
