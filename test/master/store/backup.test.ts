// Backups and restored databases are created 0600, whatever the umask or the backup's own mode.
import { chmodSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { backupDatabase, BackupError, migrateStore, restoreDatabase } from "../../../master/store/open.js";
import { removeTempDirs, tempDir } from "../../helpers/temp.js";

afterEach(() => removeTempDirs());

const mode = (path: string) => statSync(path).mode & 0o777;

describe("backupDatabase and restoreDatabase", () => {
  it("write the backup, its .sha256 and the restored database 0600", async () => {
    const dir = tempDir();
    const db = join(dir, "gaffer.db");
    expect((await migrateStore({ db })).error).toBeUndefined();
    const backup = join(dir, "copy.db");
    await backupDatabase(db, backup);
    expect(mode(backup)).toBe(0o600);
    expect(mode(`${backup}.sha256`)).toBe(0o600);

    // A backup an operator made readable to others does not make the restored database so.
    chmodSync(backup, 0o644);
    const restored = join(dir, "restored.db");
    await restoreDatabase(backup, restored);
    expect(mode(restored)).toBe(0o600);
    expect(statSync(restored).size).toBe(statSync(backup).size);
  });

  it("refuses to write over a file that exists", async () => {
    const dir = tempDir();
    const db = join(dir, "gaffer.db");
    expect((await migrateStore({ db })).error).toBeUndefined();
    await expect(backupDatabase(db, db)).rejects.toBeInstanceOf(BackupError);
  });
});
