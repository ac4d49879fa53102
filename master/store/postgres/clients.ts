// API clients and their access tokens on PostgreSQL: only hashes are stored.
import { sql } from "kysely";
import { decodeCursor, pageOf } from "../pages.js";
import type { ActorParams, Client, ClientStore, ClientWithSecret, PageParams, Role, Token, TokenGrant, TokenStore } from "../types.js";
import { changed, rowsOf, writeAudit, type PgContext } from "./context.js";

interface ClientRow {
  seq: number;
  id: string;
  name: string;
  role: string;
  secret_hash: string | null;
  created_at: string;
  disabled_at: string | null;
}

interface TokenRow {
  seq: number;
  id: string;
  client_id: string;
  token_hash: string;
  expires_at: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

function toClient(row: ClientRow): Client {
  return { id: row.id, name: row.name, role: row.role as Role, created_at: row.created_at, disabled_at: row.disabled_at };
}

function toToken(row: TokenRow): Token {
  return {
    id: row.id,
    client_id: row.client_id,
    expires_at: row.expires_at,
    created_at: row.created_at,
    last_used_at: row.last_used_at,
    revoked_at: row.revoked_at,
  };
}

export class PostgresClientStore implements ClientStore {
  constructor(private readonly ctx: PgContext) {}

  async create(params: { id: string; name: string; role: Role; secretHash: string; actor: string | null }): Promise<Client> {
    return this.ctx.db.transaction(async (tx) => {
      const at = this.ctx.clock.now().toISOString();
      const [row] = await rowsOf(
        tx,
        sql<ClientRow>`INSERT INTO clients (id, name, role, secret_hash, created_at)
                       VALUES (${params.id}, ${params.name}, ${params.role}, ${params.secretHash}, ${at}) RETURNING *`,
      );
      await writeAudit(tx.db, [{ event_type: "client.created", entity_type: "client", entity_id: params.id, client_id: params.actor, details: { name: params.name, role: params.role } }], at);
      return toClient(row as ClientRow);
    });
  }

  async get(id: string): Promise<ClientWithSecret | undefined> {
    const row = await this.ctx.db.one(sql<ClientRow>`SELECT * FROM clients WHERE id = ${id}`);
    return row ? { ...toClient(row), secret_hash: row.secret_hash } : undefined;
  }

  async list(params: PageParams & { includeDisabled?: boolean }) {
    const after = decodeCursor(params.cursor) ?? 0;
    const rows = await this.ctx.db.run(sql<ClientRow>`
      SELECT * FROM clients WHERE seq > ${after} ${params.includeDisabled ? sql`` : sql`AND disabled_at IS NULL`}
      ORDER BY seq LIMIT ${params.limit + 1}`);
    return pageOf(rows, params.limit, (row) => row.seq, toClient);
  }

  async disable(params: ActorParams) {
    return this.ctx.db.transaction(async (tx) => {
      const [row] = await rowsOf(tx, sql<ClientRow>`SELECT * FROM clients WHERE id = ${params.id} FOR UPDATE`);
      if (!row) return { ok: false as const, reason: "not_found" as const };
      const at = this.ctx.clock.now().toISOString();
      const revoked: string[] = [];
      if (row.disabled_at === null) {
        row.disabled_at = at;
        await changed(tx, sql`UPDATE clients SET disabled_at = ${at} WHERE id = ${row.id}`);
        const tokens = await rowsOf(tx, sql<{ id: string }>`UPDATE auth_tokens SET revoked_at = ${at} WHERE client_id = ${row.id} AND revoked_at IS NULL RETURNING id`);
        revoked.push(...tokens.map((token) => token.id));
        // Every master drops what it cached of this client's grants (API.md §12).
        tx.mark({ revoked: true });
        await writeAudit(
          tx.db,
          [
            { event_type: "client.disabled", entity_type: "client", entity_id: row.id, client_id: params.actor, details: {} },
            ...revoked.map((id) => ({ event_type: "token.revoked", entity_type: "token", entity_id: id, client_id: params.actor, details: { client: row.id, reason: "client_disabled" } })),
          ],
          at,
        );
      }
      return { ok: true as const, client: toClient(row), revoked };
    });
  }

  async countByRole(role: Role): Promise<number> {
    const row = await this.ctx.db.one(sql<{ n: number }>`SELECT count(*) AS n FROM clients WHERE role = ${role} AND disabled_at IS NULL`);
    return row?.n ?? 0;
  }
}

export class PostgresTokenStore implements TokenStore {
  constructor(private readonly ctx: PgContext) {}

  async issue(params: { id: string; clientId: string; tokenHash: string; expiresAt: Date }): Promise<Token> {
    return this.ctx.db.transaction(async (tx) => {
      const at = this.ctx.clock.now().toISOString();
      const expiresAt = params.expiresAt.toISOString();
      const [row] = await rowsOf(
        tx,
        sql<TokenRow>`INSERT INTO auth_tokens (id, client_id, token_hash, expires_at, created_at)
                      VALUES (${params.id}, ${params.clientId}, ${params.tokenHash}, ${expiresAt}, ${at}) RETURNING *`,
      );
      await writeAudit(tx.db, [{ event_type: "token.issued", entity_type: "token", entity_id: params.id, client_id: params.clientId, details: { expires_at: expiresAt } }], at);
      return toToken(row as TokenRow);
    });
  }

  async findByHash(tokenHash: string): Promise<TokenGrant | undefined> {
    const row = await this.ctx.db.one(sql<TokenRow & { role: string; client_disabled_at: string | null }>`
      SELECT t.*, c.role, c.disabled_at AS client_disabled_at
      FROM auth_tokens t JOIN clients c ON c.id = t.client_id WHERE t.token_hash = ${tokenHash}`);
    return row ? { ...toToken(row), role: row.role as Role, client_disabled_at: row.client_disabled_at } : undefined;
  }

  async touch(params: { id: string; at: Date }): Promise<void> {
    await this.ctx.db.run(sql`UPDATE auth_tokens SET last_used_at = ${params.at.toISOString()} WHERE id = ${params.id}`);
  }

  async revoke(params: ActorParams) {
    return this.ctx.db.transaction(async (tx) => {
      const [row] = await rowsOf(tx, sql<TokenRow>`SELECT * FROM auth_tokens WHERE id = ${params.id} FOR UPDATE`);
      if (!row) return { ok: false as const, reason: "not_found" as const };
      if (row.revoked_at === null) {
        const at = this.ctx.clock.now().toISOString();
        await changed(tx, sql`UPDATE auth_tokens SET revoked_at = ${at} WHERE id = ${row.id}`);
        await writeAudit(tx.db, [{ event_type: "token.revoked", entity_type: "token", entity_id: row.id, client_id: params.actor, details: { client: row.client_id } }], at);
        tx.mark({ revoked: true });
        row.revoked_at = at;
      }
      return { ok: true as const, token: toToken(row) };
    });
  }

  async list(params: PageParams & { clientId?: string | undefined }) {
    const before = decodeCursor(params.cursor);
    const rows = await this.ctx.db.run(sql<TokenRow>`
      SELECT * FROM auth_tokens WHERE true
      ${before === undefined ? sql`` : sql`AND seq < ${before}`}
      ${params.clientId === undefined ? sql`` : sql`AND client_id = ${params.clientId}`}
      ORDER BY seq DESC LIMIT ${params.limit + 1}`);
    return pageOf(rows, params.limit, (row) => row.seq, toToken);
  }

  async deleteExpired(params: { before: Date; limit: number }): Promise<number> {
    const rows = await this.ctx.db.run(sql<{ id: string }>`
      DELETE FROM auth_tokens WHERE id IN (
        SELECT id FROM auth_tokens WHERE expires_at < ${params.before.toISOString()} LIMIT ${params.limit})
      RETURNING id`);
    return rows.length;
  }
}
