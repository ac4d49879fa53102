// Access tokens: only their hashes are stored, never a token.
import { sql } from "kysely";
import type { AuthTokensTable } from "../schema.js";
import type { ActorParams, Page, PageParams, Role, Token, TokenGrant, TokenStore } from "../types.js";
import type { StoreContext } from "./context.js";
import { param, type Prepared } from "./database.js";
import { decodeCursor, pageOf } from "./rows.js";

function toToken(row: AuthTokensTable): Token {
  return {
    id: row.id,
    client_id: row.client_id,
    expires_at: row.expires_at,
    created_at: row.created_at,
    last_used_at: row.last_used_at,
    revoked_at: row.revoked_at,
  };
}

type GrantRow = AuthTokensTable & { role: string; client_disabled_at: string | null };

export class SqliteTokenStore implements TokenStore {
  /** A token by its hash, with its client's role and state: every authenticated request. */
  private readonly grant: Prepared<GrantRow, { hash: string }>;
  private readonly touchToken: Prepared<unknown, { id: string; at: string }>;

  constructor(private readonly ctx: StoreContext) {
    const { db } = ctx;
    this.grant = db.prepare(
      db.kysely
        .selectFrom("auth_tokens as t")
        .innerJoin("clients as c", "c.id", "t.client_id")
        .selectAll("t")
        .select(["c.role as role", "c.disabled_at as client_disabled_at"])
        .where("t.token_hash", "=", param("hash")),
    );
    this.touchToken = db.prepare(db.kysely.updateTable("auth_tokens").set({ last_used_at: param("at") }).where("id", "=", param("id")));
  }

  async issue(params: { id: string; clientId: string; tokenHash: string; expiresAt: Date }): Promise<Token> {
    const { db, audit } = this.ctx;
    return db.transaction(() => {
      const at = this.ctx.clock.now().toISOString();
      const row: AuthTokensTable = {
        id: params.id,
        client_id: params.clientId,
        token_hash: params.tokenHash,
        expires_at: params.expiresAt.toISOString(),
        created_at: at,
        last_used_at: null,
        revoked_at: null,
      };
      db.run(db.kysely.insertInto("auth_tokens").values(row));
      audit.write(
        {
          event_type: "token.issued",
          entity_type: "token",
          entity_id: row.id,
          client_id: params.clientId,
          details: { expires_at: row.expires_at },
        },
        at,
      );
      return toToken(row);
    });
  }

  async findByHash(tokenHash: string): Promise<TokenGrant | undefined> {
    const row = this.grant.get({ hash: tokenHash });
    if (!row) return undefined;
    return { ...toToken(row), role: row.role as Role, client_disabled_at: row.client_disabled_at } satisfies TokenGrant;
  }

  async touch(params: { id: string; at: Date }): Promise<void> {
    this.touchToken.run({ id: params.id, at: params.at.toISOString() });
  }

  async revoke(params: ActorParams): Promise<{ ok: true; token: Token } | { ok: false; reason: "not_found" }> {
    const { db, audit } = this.ctx;
    return db.transaction(() => {
      const row = db.get(db.kysely.selectFrom("auth_tokens").selectAll().where("id", "=", params.id));
      if (!row) return { ok: false as const, reason: "not_found" as const };
      if (row.revoked_at === null) {
        const at = this.ctx.clock.now().toISOString();
        db.run(db.kysely.updateTable("auth_tokens").set({ revoked_at: at }).where("id", "=", row.id));
        audit.write(
          {
            event_type: "token.revoked",
            entity_type: "token",
            entity_id: row.id,
            client_id: params.actor,
            details: { client: row.client_id },
          },
          at,
        );
        this.ctx.signal.mark({ revoked: true });
        row.revoked_at = at;
      }
      return { ok: true as const, token: toToken(row) };
    });
  }

  async list(params: PageParams & { clientId?: string | undefined }): Promise<Page<Token>> {
    const { db } = this.ctx;
    const before = decodeCursor(params.cursor);
    let query = db.kysely
      .selectFrom("auth_tokens")
      .selectAll()
      .select(sql<number>`rowid`.as("position"))
      .orderBy(sql`rowid`, "desc")
      .limit(params.limit + 1);
    if (before !== undefined) query = query.where(sql<number>`rowid`, "<", before);
    if (params.clientId !== undefined) query = query.where("client_id", "=", params.clientId);
    return pageOf(db.all(query), params.limit, (row) => row.position, toToken);
  }

  async deleteExpired(params: { before: Date; limit: number }): Promise<number> {
    const { db } = this.ctx;
    return db.run(
      db.kysely
        .deleteFrom("auth_tokens")
        .where(
          "id",
          "in",
          db.kysely
            .selectFrom("auth_tokens")
            .select("id")
            .where("expires_at", "<", params.before.toISOString())
            .limit(params.limit),
        ),
    );
  }
}
