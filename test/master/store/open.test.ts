// The files of the store are its owner's alone: folders 0700, the database, its WAL and shared memory 0600.
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createQueuePolicy } from "../../../master/queue/policy.js";
import { migrateStore, openStore } from "../../../master/store/open.js";
import { FakeClock } from "../../helpers/clock.js";
import { removeTempDirs, tempDir } from "../../helpers/temp.js";

afterEach(() => removeTempDirs());

const mode = (path: string) => statSync(path).mode & 0o777;
const policy = createQueuePolicy({ retryDelayS: 5, retryMaxDelayS: 300, stallGraceS: 300, agingS: 300, nodeTimeoutS: 60 });

describe("openStore", () => {
  it("creates the database's folders 0700 and the database, its -wal and -shm 0600", async () => {
    const root = tempDir();
    const db = join(root, "var", "gaffer", "gaffer.db");
    const store = await openStore({ config: { db }, clock: new FakeClock(), policy, serving: true });
    try {
      await store.clients.create({ id: "client-1", name: "c", role: "client", secretHash: "x", actor: null });
      expect(mode(join(root, "var"))).toBe(0o700);
      expect(mode(join(root, "var", "gaffer"))).toBe(0o700);
      for (const file of [db, `${db}-wal`, `${db}-shm`]) {
        expect(existsSync(file), file).toBe(true);
        expect(mode(file), file).toBe(0o600);
      }
    } finally {
      await store.close();
    }
  });

  it("leaves the mode of a folder and a database that exist as the operator set it", async () => {
    const dir = join(tempDir(), "shared");
    mkdirSync(dir, { mode: 0o750 });
    chmodSync(dir, 0o750);
    const db = join(dir, "gaffer.db");
    writeFileSync(db, "");
    chmodSync(db, 0o640);
    const store = await openStore({ config: { db }, clock: new FakeClock(), policy });
    await store.close();
    expect(mode(dir)).toBe(0o750);
    expect(mode(db)).toBe(0o640);
  });
});

describe("migrateStore", () => {
  it("creates a new database 0600 in a folder 0700", async () => {
    const dir = join(tempDir(), "fresh");
    const db = join(dir, "gaffer.db");
    expect((await migrateStore({ db })).error).toBeUndefined();
    expect(mode(dir)).toBe(0o700);
    expect(mode(db)).toBe(0o600);
  });
});
