#!/usr/bin/env node
// The gaffer command line (API.md §9): parse, call, print; no logic of its own.
import { Command } from "commander";
import { packageVersion } from "../master/package-info.js";
import { masterCommand } from "./commands/master.js";
import { migrateCommand } from "./commands/migrate.js";
import { runCli } from "./commands/output.js";

const program = new Command()
  .name("gaffer")
  .description("gaffer: a job scheduler. Jobs from an API, run on your own machines.")
  .version(packageVersion())
  .showHelpAfterError()
  .addCommand(masterCommand())
  .addCommand(migrateCommand());

await runCli(program, process.argv);
