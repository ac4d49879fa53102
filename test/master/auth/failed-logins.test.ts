// Failed logins cost the master's log what they cost the audit log: one line for a client id
// and address's first failure in a window, one summary for the rest.
import { describe, expect, it } from "vitest";
import { FailedLoginLog } from "../../../master/auth/failed-logins.js";
import type { Logger } from "../../../master/log.js";
import type { AuditStore } from "../../../master/store/types.js";

function fakes() {
  const rows: { entity_id: string; details: unknown }[] = [];
  const warnings: Record<string, unknown>[] = [];
  const audit = { record: async (row: { entity_id: string; details: unknown }) => void rows.push(row) } as unknown as AuditStore;
  const log = { warn: (fields: Record<string, unknown>) => void warnings.push(fields) } as unknown as Logger;
  return { rows, warnings, failedLogins: new FailedLoginLog(audit, log) };
}

describe("FailedLoginLog", () => {
  it("warns once for a client id and address's first failure and once more for the rest of the window", async () => {
    const { rows, warnings, failedLogins } = fakes();
    for (let i = 0; i < 500; i++) await failedLogins.record("worker-1", "10.0.0.9");
    await failedLogins.record("worker-1", "10.0.0.10");
    expect(warnings).toEqual([
      { event: "auth.failed", clientId: "worker-1", address: "10.0.0.9" },
      { event: "auth.failed", clientId: "worker-1", address: "10.0.0.10" },
    ]);
    expect(rows).toHaveLength(2);
    await failedLogins.flush();
    expect(warnings).toHaveLength(3);
    expect(warnings[2]).toMatchObject({ event: "auth.failed", clientId: "worker-1", address: "10.0.0.9", attempts: 499 });
    expect(rows.map((row) => row.details)).toMatchObject([{ attempts: 1 }, { attempts: 1 }, { attempts: 499 }]);
    // A new window: the next failure is told again.
    await failedLogins.record("worker-1", "10.0.0.9");
    expect(warnings).toHaveLength(4);
  });

  it("warns once, not once per pair, when failures come from more pairs than it tracks", async () => {
    const { warnings, failedLogins } = fakes();
    for (let i = 0; i < 3000; i++) await failedLogins.record(`guess-${i}`, "10.0.0.9");
    expect(warnings).toHaveLength(1001);
    expect(warnings[1000]).toMatchObject({ clientId: "*", address: "*" });
    await failedLogins.flush();
    expect(warnings).toHaveLength(1002);
    expect(warnings[1001]).toMatchObject({ clientId: "*", attempts: 2000 });
  });
});
