// gaffer nodes list | drain | resume, gaffer stats, gaffer state, gaffer token
import { Command, Option } from "commander";
import { NODE_STATUSES } from "../../master/store/types.js";
import { MODES } from "../../master/modes.js";
import { printJson, printObject, printPage, printTable } from "./output.js";
import { CliError, EXIT } from "./output.js";
import { call, connect, HOW_TO_SIGN_IN, withRemoteOptions, type RemoteFlags } from "./remote.js";

const NODE_COLUMNS = ["id", "name", "status", "running", "capacity", "labels", "types", "last_heartbeat", "version"];

export function nodesCommand(): Command {
  const nodes = new Command("nodes").description("Worker nodes (admin)");
  withRemoteOptions(
    nodes
      .command("list")
      .description("List nodes")
      .addOption(new Option("--status <status>").choices(NODE_STATUSES))
      .option("--limit <n>", "1–500", "100")
      .option("--cursor <cursor>", "the next page"),
  ).action(async (opts: RemoteFlags & { status?: string; limit: string; cursor?: string }) => {
    const page = await call(() => connect(opts).listNodes({ status: opts.status, limit: Number(opts.limit), cursor: opts.cursor }));
    if (opts.json) return printPage(page, NODE_COLUMNS, true);
    // A node that names no types runs any type: say so rather than print "-".
    printPage({ ...page, items: page.items.map((node) => ({ ...node, types: node.types ?? "(any)" })) }, NODE_COLUMNS, false);
  });
  withRemoteOptions(nodes.command("drain").description("Hand a node no more jobs; its running jobs finish").argument("<id>")).action(
    async (id: string, opts: RemoteFlags) => printObject((await call(() => connect(opts).drainNode(id))) as unknown as Record<string, unknown>, opts.json),
  );
  withRemoteOptions(nodes.command("resume").description("Hand a drained node jobs again").argument("<id>")).action(
    async (id: string, opts: RemoteFlags) => printObject((await call(() => connect(opts).resumeNode(id))) as unknown as Record<string, unknown>, opts.json),
  );
  return nodes;
}

export function statsCommand(): Command {
  return withRemoteOptions(new Command("stats").description("Jobs by status, pending jobs by priority, nodes by status")).action(
    async (opts: RemoteFlags) => {
      const stats = await call(() => connect(opts).queueStats());
      if (opts.json) return printJson(stats);
      printTable([stats.jobs as unknown as Record<string, unknown>], Object.keys(stats.jobs));
      process.stdout.write("\npending by priority\n");
      printTable([stats.pending_by_priority as unknown as Record<string, unknown>], Object.keys(stats.pending_by_priority));
      process.stdout.write(`\noldest pending: ${stats.oldest_pending_age_s === null ? "-" : `${stats.oldest_pending_age_s.toFixed(1)} s`}\n\nnodes\n`);
      printTable([stats.nodes as unknown as Record<string, unknown>], Object.keys(stats.nodes));
    },
  );
}

export function stateCommand(): Command {
  const state = withRemoteOptions(
    new Command("state").description("The master's mode, version, uptime, database and sweepers (admin)"),
  ).action(async (opts: RemoteFlags) => {
    const current = await call(() => connect(opts).request<Record<string, unknown>>("GET", "/api/v1/state"));
    printObject(current, opts.json);
  });
  withRemoteOptions(
    state
      .command("mode")
      .description("Set the mode: normal, paused (no jobs handed out), read_only (writes refused)")
      .addArgument(new Command().createArgument("<mode>").choices(MODES)),
  ).action(async (mode: string, opts: RemoteFlags) => {
    const current = await call(() =>
      connect(opts).request<Record<string, unknown>>("PUT", "/api/v1/state/mode", { body: { mode }, retry: "never" }),
    );
    if (opts.json) printJson(current);
    else process.stdout.write(`mode ${String(current.mode)}\n`);
  });
  return state;
}

export function tokenCommand(): Command {
  return withRemoteOptions(
    new Command("token").description(
      "Print an access token for the client credentials, reused until shortly before it expires (for curl: -H \"Authorization: Bearer $(gaffer token)\")",
    ),
  ).action(async (opts: RemoteFlags) => {
    const master = connect(opts);
    // As every command does, a given GAFFER_TOKEN comes first: it is the token in use.
    const given = process.env.GAFFER_TOKEN;
    if (given) {
      if (opts.json) printJson({ access_token: given, token_type: "Bearer" });
      else process.stdout.write(`${given}\n`);
      return;
    }
    if (!(opts.clientId ?? process.env.GAFFER_CLIENT_ID)) throw new CliError(`gaffer token needs a client id and secret: ${HOW_TO_SIGN_IN}`, EXIT.usage);
    const token = await call(() => master.accessToken());
    const expiresInS = Math.max(0, Math.floor((token.expiresAt - Date.now()) / 1000));
    if (opts.json) {
      printJson({ access_token: token.value, token_type: "Bearer", expires_in: expiresInS, expires_at: new Date(token.expiresAt).toISOString() });
    } else {
      process.stdout.write(`${token.value}\n`);
    }
  });
}
