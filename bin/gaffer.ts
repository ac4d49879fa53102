#!/usr/bin/env node
// The gaffer command line (API.md §9): parse, call, print; no logic of its own.
import { Command } from "commander";
import { packageVersion } from "../master/package-info.js";
import { backupCommand, restoreCommand } from "./commands/backup.js";
import { clientsCommand } from "./commands/clients.js";
import { devCommand } from "./commands/dev.js";
import { jobsCommand } from "./commands/jobs.js";
import { nodesCommand, stateCommand, statsCommand, tokenCommand } from "./commands/nodes.js";
import { schedulesCommand } from "./commands/schedules.js";
import { typesCommand } from "./commands/types.js";
import { masterCommand } from "./commands/master.js";
import { migrateCommand } from "./commands/migrate.js";
import { runCli } from "./commands/output.js";
import { workerCommand } from "./commands/worker.js";

const program = new Command()
  .name("gaffer")
  .description("gaffer: a job scheduler. Jobs from an API, run on your own machines.")
  .version(packageVersion())
  .addCommand(devCommand())
  .addCommand(masterCommand())
  .addCommand(workerCommand())
  .addCommand(migrateCommand())
  .addCommand(clientsCommand())
  .addCommand(jobsCommand())
  .addCommand(nodesCommand())
  .addCommand(schedulesCommand())
  .addCommand(typesCommand())
  .addCommand(statsCommand())
  .addCommand(stateCommand())
  .addCommand(tokenCommand())
  .addCommand(backupCommand())
  .addCommand(restoreCommand());

await runCli(program, process.argv);
