// API clients: only the hash of a secret is stored, never the secret.
import { sql } from "kysely";
import type { ClientsTable } from "../schema.js";
import type { ActorParams, Client, ClientStore, ClientWithSecret, Page, PageParams, Role } from "../types.js";
import type { StoreContext } from "./context.js";
import { decodeCursor, pageOf } from "./rows.js";

function toClient(row: ClientsTable): Client {
  return { id: row.id, name: row.name, role: row.role as Role, created_at: row.created_at, disabled_at: row.disabled_at };
}

export class SqliteClientStore implements ClientStore {
  constructor(private readonly ctx: StoreContext) {}

  private load(id: string): ClientsTable | undefined {
    const { db } = this.ctx;
    return db.get(db.kysely.selectFrom("clients").selectAll().where("id", "=", id));
  }

  async create(params: { id: string; name: string; role: Role; secretHash: string; actor: string | null }): Promise<Client> {
    const { db, audit } = this.ctx;
    return db.transaction(() => {
      const at = this.ctx.clock.now().toISOString();
      const row: ClientsTable = {
        id: params.id,
        name: params.name,
        role: params.role,
        secret_hash: params.secretHash,
        created_at: at,
        disabled_at: null,
      };
      db.run(db.kysely.insertInto("clients").values(row));
      audit.write(
        {
          event_type: "client.created",
          entity_type: "client",
          entity_id: row.id,
          client_id: params.actor,
          details: { name: row.name, role: row.role },
        },
        at,
      );
      return toClient(row);
    });
  }

  async get(id: string): Promise<ClientWithSecret | undefined> {
    const row = this.load(id);
    return row ? ({ ...toClient(row), secret_hash: row.secret_hash } satisfies ClientWithSecret) : undefined;
  }

  async list(params: PageParams & { includeDisabled?: boolean }): Promise<Page<Client>> {
    const { db } = this.ctx;
    const after = decodeCursor(params.cursor);
    let query = db.kysely
      .selectFrom("clients")
      .selectAll()
      .select(sql<number>`rowid`.as("position"))
      .orderBy(sql`rowid`)
      .limit(params.limit + 1);
    if (after !== undefined) query = query.where(sql<number>`rowid`, ">", after);
    if (!params.includeDisabled) query = query.where("disabled_at", "is", null);
    return pageOf(db.all(query), params.limit, (row) => row.position, toClient);
  }

  async disable(params: ActorParams): Promise<{ ok: true; client: Client; revoked: string[] } | { ok: false; reason: "not_found" }> {
    const { db, audit } = this.ctx;
    return db.transaction(() => {
      const row = this.load(params.id);
      if (!row) return { ok: false as const, reason: "not_found" as const };
      const at = this.ctx.clock.now().toISOString();
      const revoked: string[] = [];
      if (row.disabled_at === null) {
        db.run(db.kysely.updateTable("clients").set({ disabled_at: at }).where("id", "=", row.id));
        audit.write(
          { event_type: "client.disabled", entity_type: "client", entity_id: row.id, client_id: params.actor, details: {} },
          at,
        );
        const tokens = db.all(
          db.kysely
            .updateTable("auth_tokens")
            .set({ revoked_at: at })
            .where("client_id", "=", row.id)
            .where("revoked_at", "is", null)
            .returning("id"),
        );
        // Every cached grant of this client is dropped (API.md §12: on every master).
        this.ctx.signal.mark({ revoked: true });
        for (const token of tokens) {
          revoked.push(token.id);
          audit.write(
            {
              event_type: "token.revoked",
              entity_type: "token",
              entity_id: token.id,
              client_id: params.actor,
              details: { client: row.id, reason: "client_disabled" },
            },
            at,
          );
        }
      }
      const current = this.load(row.id) as ClientsTable;
      return { ok: true as const, client: toClient(current), revoked };
    });
  }

  async countByRole(role: Role): Promise<number> {
    const { db } = this.ctx;
    const row = db.get(
      db.kysely
        .selectFrom("clients")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("role", "=", role)
        .where("disabled_at", "is", null),
    );
    return row?.n ?? 0;
  }
}
