// gaffer clients create | list | disable: API credentials.
import { Command, Option } from "commander";
import { ROLES, type Role } from "../../master/store/types.js";
import { printJson, printTable } from "./output.js";
import { call, connect, withRemoteOptions, type RemoteFlags } from "./remote.js";

const CLIENT_COLUMNS = ["id", "name", "role", "created_at", "disabled_at"];

function printNewClient(client: { id: string; name: string; role: string; client_secret: string }, json: boolean | undefined) {
  if (json) return printJson(client);
  process.stdout.write(
    `created ${client.role} client "${client.name}"\n` +
      `  client_id:     ${client.id}\n` +
      `  client_secret: ${client.client_secret}\n` +
      `The secret is shown only now; only its hash is stored.\n`,
  );
}

export function clientsCommand(): Command {
  const clients = new Command("clients").description("API clients (credentials)");
  withRemoteOptions(
    clients
      .command("create")
      .description("Create a client; --db (or --database-url) works on the database directly (how the first admin is made)")
      .requiredOption("--name <name>", "a name for people")
      .addOption(new Option("--role <role>", "what it may do").choices([...ROLES]).makeOptionMandatory())
      .option("--db <path>", "create it in this database file, no master needed (GAFFER_DB)")
      .option("--database-url <url>", "create it in this PostgreSQL database, no master needed (GAFFER_DATABASE_URL)"),
  ).action(async (opts: RemoteFlags & { name: string; role: Role; db?: string; databaseUrl?: string }) => {
    const remote = Boolean(opts.master || process.env.GAFFER_MASTER_URL);
    if (opts.db !== undefined || opts.databaseUrl !== undefined || (!remote && (process.env.GAFFER_DB || process.env.GAFFER_DATABASE_URL))) {
      const [{ createClient }, { loadConfig }, { withStore }] = await Promise.all([
        import("../../master/auth/clients.js"),
        import("../../master/config.js"),
        import("../../master/offline.js"),
      ]);
      const config = loadConfig({ flags: { db: opts.db, databaseUrl: opts.databaseUrl } });
      const client = await withStore(config, (store) => createClient(store, { name: opts.name, role: opts.role, actor: null }));
      return printNewClient(client, opts.json);
    }
    const master = connect(opts);
    const client = await call(() =>
      master.request<{ id: string; name: string; role: string; client_secret: string }>("POST", "/api/v1/clients", {
        body: { name: opts.name, role: opts.role },
        retry: "never",
      }),
    );
    printNewClient(client, opts.json);
  });
  withRemoteOptions(
    clients.command("list").description("List clients").option("--all", "include disabled clients"),
  ).action(async (opts: RemoteFlags & { all?: boolean }) => {
    const master = connect(opts);
    const page = await call(() =>
      master.request<{ items: Record<string, unknown>[] }>("GET", "/api/v1/clients", {
        query: { limit: 500, include_disabled: opts.all ? "true" : undefined },
      }),
    );
    if (opts.json) printJson(page.items);
    else printTable(page.items, CLIENT_COLUMNS);
  });
  withRemoteOptions(clients.command("disable").description("Disable a client and revoke its tokens").argument("<id>")).action(
    async (id: string, opts: RemoteFlags) => {
      const master = connect(opts);
      const client = await call(() => master.request<Record<string, unknown>>("DELETE", `/api/v1/clients/${encodeURIComponent(id)}`));
      if (opts.json) printJson(client);
      else process.stdout.write(`disabled ${id}; its tokens are revoked\n`);
    },
  );
  return clients;
}


