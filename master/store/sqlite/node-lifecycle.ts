// A node declared dead that shows a sign of life (heartbeat, claim) is back.
import { sql } from "kysely";
import type { StoreContext } from "./context.js";

export function reviveNode(ctx: StoreContext, nodeId: string, at: string): void {
  const { db } = ctx;
  const changed = db.run(
    db.kysely
      .updateTable("nodes")
      .set({ status: "online", last_heartbeat: at, updated_at: at })
      .where("id", "=", nodeId)
      .where("status", "=", sql.lit("dead")),
  );
  if (changed > 0) {
    ctx.audit.write(
      { event_type: "node.recovered", entity_type: "node", entity_id: nodeId, client_id: null, details: {} },
      at,
    );
  }
}
