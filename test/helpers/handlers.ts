// A handler script for real-process tests, steered by the job's payload, and its handlers file.
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * payload: { sleep_ms?, gate_file?, exit?, stderr?, result?, progress?: [n, message], pid_file?, fail_until_attempt? }
 * It writes its pid to pid_file (if given) before doing anything else; with gate_file, it
 * waits until that file exists (a test opens the gate when it has seen what it waits for).
 */
const SCRIPT = `
let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", async () => {
  const job = JSON.parse(input);
  const p = job.payload || {};
  if (p.pid_file) require("node:fs").writeFileSync(p.pid_file, String(process.pid));
  if (p.runs_file) require("node:fs").appendFileSync(p.runs_file, job.id + " " + job.attempt + " " + process.env.WORKER_NAME + "\\n");
  if (p.progress) console.log("::progress " + p.progress[0] + " " + p.progress[1]);
  if (p.sleep_ms) await new Promise((r) => setTimeout(r, p.sleep_ms));
  while (p.gate_file && !require("node:fs").existsSync(p.gate_file)) await new Promise((r) => setTimeout(r, 20));
  if (p.stderr) console.error(p.stderr);
  if (p.fail_until_attempt && job.attempt < p.fail_until_attempt) process.exit(1);
  if (p.exit !== undefined) process.exit(p.exit);
  console.log(JSON.stringify(p.result !== undefined ? p.result : { echo: p, attempt: job.attempt }));
});
`;

export function writeHandlers(dir: string, types: string[] = ["echo", "gpu-work", "slow"], env?: Record<string, string>): string {
  const script = join(dir, "handler.js");
  writeFileSync(script, SCRIPT);
  const handlers = Object.fromEntries(types.map((type) => [type, { command: [process.execPath, script], ...(env ? { env } : {}) }]));
  const file = join(dir, "handlers.json");
  writeFileSync(file, JSON.stringify(handlers, null, 2));
  return file;
}
