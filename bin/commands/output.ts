// How the CLI prints and fails: tables for people, --json for scripts, exit codes that mean something.
import type { Command } from "commander";
import { ConfigError } from "../../master/config-error.js";

/**
 * Exit codes: 0 ok; 1 failed (or the awaited job failed); 2 bad usage, configuration or credentials;
 * 3 not found; 4 conflict; 5 master unreachable or unavailable; 6 gave up waiting.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3, conflict: 4, unavailable: 5, waitTimeout: 6 } as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A plain text table: one header row, columns padded to their widest cell. */
export function printTable(rows: Record<string, unknown>[], columns: string[]): void {
  if (rows.length === 0) {
    process.stdout.write("(none)\n");
    return;
  }
  const cell = (value: unknown): string =>
    value === null || value === undefined ? "-" : typeof value === "object" ? JSON.stringify(value) : String(value);
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => cell(row[column]).length)));
  const line = (cells: string[]) => cells.map((text, i) => text.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
  process.stdout.write(`${line(columns.map((c) => c.toUpperCase()))}\n`);
  for (const row of rows) process.stdout.write(`${line(columns.map((column) => cell(row[column])))}\n`);
}

/** One object: JSON for scripts, `key: value` lines for people. */
export function printObject(value: Record<string, unknown>, json: boolean | undefined): void {
  if (json) return printJson(value);
  const width = Math.max(...Object.keys(value).map((key) => key.length));
  for (const [key, field] of Object.entries(value)) {
    const text = field === null || field === undefined ? "-" : typeof field === "object" ? JSON.stringify(field) : String(field);
    process.stdout.write(`${key.padEnd(width)}  ${text}\n`);
  }
}

/** A page of items: JSON for scripts, a table for people (and how to get the next page). */
export function printPage(page: { items: unknown[]; next_cursor?: string | null }, columns: string[], json: boolean | undefined): void {
  if (json) return printJson(page);
  printTable(page.items as Record<string, unknown>[], columns);
  if (page.next_cursor) process.stdout.write(`(more: --cursor ${page.next_cursor})\n`);
}

/** Parse a JSON flag, or fail as bad usage naming the flag. */
export function parseJsonFlag(flag: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CliError(`${flag} is not valid JSON: ${(error as Error).message}`, EXIT.usage);
  }
}

/**
 * Settings commands added with addCommand() do not inherit, set on the whole tree: exits come
 * back to runCli, and a usage error (a typo of a command or subcommand, a missing option) prints
 * the error, commander's "Did you mean …?" and where the help is, never the whole help.
 */
function configureTree(command: Command, path: string): void {
  command.exitOverride().showHelpAfterError(`Run '${path} --help' for usage.`);
  for (const sub of command.commands) configureTree(sub, `${path} ${sub.name()}`);
}

export async function runCli(program: Command, argv: string[]): Promise<void> {
  configureTree(program, program.name());
  try {
    await program.parseAsync(argv);
  } catch (error) {
    const commanderError = error as { code?: string; exitCode?: number };
    if (commanderError.code?.startsWith("commander.")) {
      // commander printed its own message (help, version, usage errors).
      process.exitCode = commanderError.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`gaffer: ${error.message}\n`);
      process.exitCode = EXIT.usage;
      return;
    }
    if (error instanceof CliError) {
      process.stderr.write(`gaffer: ${error.message}\n`);
      process.exitCode = error.exitCode;
      return;
    }
    process.stderr.write(`gaffer: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = EXIT.failed;
  }
}
