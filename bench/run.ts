// npm run bench: real master and worker processes on this machine; every figure is the
// median of several runs; prints a table and writes bench/results/latest.json.
// usage: node dist/bench/run.js [--size tiny|full] [--runs N] [--only name,name] [--out FILE]
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { packageVersion } from "../master/package-info.js";
import { cleanTempDirs, MASTER_ENV, median, type Settings } from "./lib.js";
import { flowControl } from "./scenarios/flow.js";
import { floor } from "./scenarios/floor.js";
import { drain, latency, mixed, submission } from "./scenarios/http.js";
import { heartbeats, memory } from "./scenarios/nodes.js";
import { waits } from "./scenarios/waits.js";
import { deadNodeSweep, scaling } from "./scenarios/store.js";

type Scenario = (settings: Settings) => Promise<Record<string, number>>;

const SCENARIOS: Record<string, Scenario> = {
  floor,
  submission,
  drain,
  mixed,
  latency,
  waits,
  scaling,
  flow: flowControl,
  sweep: deadNodeSweep,
  heartbeats,
  memory,
};

/**
 * The targets, by figure name prefix: ≥ or ≤ a value. Issue 24 measures throughput as a share
 * of what the same machine does in the same run (the SQL floor, a bare Express echo, plainjob),
 * and cost as CPU a job, which carries over to other machines.
 */
const TARGETS: [RegExp, "≥" | "≤", number][] = [
  [/^submit \/ express ratio/, "≥", 0.8],
  [/^submit batch \/ its SQL floor/, "≥", 0.7],
  [/^drain \/ its SQL floor/, "≥", 0.6],
  [/^drain \/ plainjob/, "≥", 1.5],
  [/^drain: master CPU a job/, "≤", 35],
  [/^drain: worker CPU a job/, "≤", 25],
  [/^dispatch latency p99/, "≤", 5],
  [/^wait answer after the result p99/, "≤", 5],
  [/^claim cost ratio/, "≤", 1.25],
  [/^claim rate with/, "≥", 0.8],
  [/^claim cost with fair share on/, "≤", 1.5],
  [/^heartbeat p99/, "≤", 20],
  [/^dead-node sweep/, "≤", 100],
  [/^master RSS/, "≤", 200],
];

function parseArgs(argv: string[]) {
  const value = (flag: string) => {
    const at = argv.indexOf(flag);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const size = value("--size") === "tiny" ? "tiny" : "full";
  return {
    settings: { size, runs: Number(value("--runs") ?? (size === "tiny" ? 1 : 3)) } as Settings,
    only: value("--only")?.split(","),
    out: value("--out"),
  };
}

function verdict(name: string, value: number): string {
  const target = TARGETS.find(([pattern]) => pattern.test(name));
  if (!target) return "";
  const [, sense, goal] = target;
  const met = sense === "≥" ? value >= goal : value <= goal;
  return `${sense} ${goal} ${met ? "ok" : "MISSED"}`;
}

function format(value: number): string {
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en");
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(3);
}

async function main(): Promise<void> {
  const { settings, only, out } = parseArgs(process.argv.slice(2));
  const file = out ?? join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bench", "results", "latest.json");
  const figures: Record<string, { median: number; runs: number[]; target: string }> = {};
  const failed: Record<string, string> = {};
  // Written after every scenario, so that a long run that fails late keeps what it measured.
  const save = () => {
    const report = {
      version: packageVersion(),
      at: new Date().toISOString(),
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memory_gb: Math.round(totalmem() / 2 ** 30), node: process.version },
      settings: { ...settings, master_env: MASTER_ENV },
      figures,
      failed,
    };
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  };
  for (const [name, scenario] of Object.entries(SCENARIOS)) {
    if (only && !only.includes(name)) continue;
    const runs: Record<string, number>[] = [];
    try {
      for (let run = 0; run < settings.runs; run++) {
        process.stderr.write(`bench: ${name} run ${run + 1}/${settings.runs}\n`);
        runs.push(await scenario(settings));
      }
    } catch (error) {
      failed[name] = (error as Error).stack ?? String(error);
      process.stderr.write(`bench: ${name} FAILED: ${failed[name]}\n`);
      continue;
    }
    for (const key of Object.keys(runs[0] ?? {})) {
      const values = runs.map((r) => r[key] ?? Number.NaN);
      figures[key] = { median: median(values), runs: values, target: "" };
      figures[key].target = verdict(key, figures[key].median);
    }
    save();
  }
  cleanTempDirs();
  save();
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  process.stdout.write(`\ngaffer ${packageVersion()} — medians of ${settings.runs} run(s), size ${settings.size}\n\n`);
  for (const [name, figure] of Object.entries(figures)) {
    process.stdout.write(`${name.padEnd(width)}  ${format(figure.median).padStart(12)}  ${figure.target}\n`);
  }
  for (const name of Object.keys(failed)) process.stdout.write(`${name}: FAILED (see the log above)\n`);
  process.stdout.write(`\nwritten to ${file}\n`);
  if (Object.keys(failed).length > 0) process.exitCode = 1;
}

await main();
