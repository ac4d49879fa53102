// API clients and their access tokens: only hashes are stored, never a secret or a token.
import { sql } from "kysely";
import type { ClientsTable, AuthTokensTable } from "../schema.js";
import type { Client, ClientStore, ClientWithSecret, Role, Token, TokenGrant, TokenStore } from "../types.js";
import type { StoreContext } from "./context.js";
import { param, type Prepared } from "./database.js";
import { decodeCursor, pageOf } from "./rows.js";

function toClient(row: ClientsTable): Client {
  return { id: row.id, name: row.name, role: row.role as Role, created_at: row.created_at, disabled_at: row.disabled_at };
}

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

export function createClientStore(ctx: StoreContext): ClientStore {
  const { db, audit } = ctx;
  return {
    async create(params) {
      return db.transaction(() => {
        const at = ctx.clock.now().toISOString();
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
    },
    async get(id) {
      const row = db.get(db.kysely.selectFrom("clients").selectAll().where("id", "=", id));
      return row ? ({ ...toClient(row), secret_hash: row.secret_hash } satisfies ClientWithSecret) : undefined;
    },
    async list(params) {
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
    },
    async disable(params) {
      return db.transaction(() => {
        const row = db.get(db.kysely.selectFrom("clients").selectAll().where("id", "=", params.id));
        if (!row) return { ok: false as const, reason: "not_found" as const };
        const at = ctx.clock.now().toISOString();
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
        const current = db.get(db.kysely.selectFrom("clients").selectAll().where("id", "=", row.id)) as ClientsTable;
        return { ok: true as const, client: toClient(current), revoked };
      });
    },
    async countByRole(role) {
      const row = db.get(
        db.kysely
          .selectFrom("clients")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where("role", "=", role)
          .where("disabled_at", "is", null),
      );
      return row?.n ?? 0;
    },
  };
}

export function createTokenStore(ctx: StoreContext): TokenStore {
  const { db, audit } = ctx;
  const grant: Prepared<AuthTokensTable & { role: string; client_disabled_at: string | null }, { hash: string }> = db.prepare(
    db.kysely
      .selectFrom("auth_tokens as t")
      .innerJoin("clients as c", "c.id", "t.client_id")
      .selectAll("t")
      .select(["c.role as role", "c.disabled_at as client_disabled_at"])
      .where("t.token_hash", "=", param("hash")),
  );
  const touch = db.prepare<{ id: string; at: string }>(
    db.kysely.updateTable("auth_tokens").set({ last_used_at: param("at") }).where("id", "=", param("id")),
  );
  return {
    async issue(params) {
      return db.transaction(() => {
        const at = ctx.clock.now().toISOString();
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
    },
    async findByHash(tokenHash) {
      const row = grant.get({ hash: tokenHash });
      if (!row) return undefined;
      return { ...toToken(row), role: row.role as Role, client_disabled_at: row.client_disabled_at } satisfies TokenGrant;
    },
    async touch(params) {
      touch.run({ id: params.id, at: params.at.toISOString() });
    },
    async revoke(params) {
      return db.transaction(() => {
        const row = db.get(db.kysely.selectFrom("auth_tokens").selectAll().where("id", "=", params.id));
        if (!row) return { ok: false as const, reason: "not_found" as const };
        if (row.revoked_at === null) {
          const at = ctx.clock.now().toISOString();
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
          row.revoked_at = at;
        }
        return { ok: true as const, token: toToken(row) };
      });
    },
    async list(params) {
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
    },
    async deleteExpired(params) {
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
    },
  };
}
