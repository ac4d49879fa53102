// The benchmark harness runs to completion at its tiny size and reports every figure:
// `npm run bench` is a command of the README, so it must not rot between measurements.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

const BENCH = join(fileURLToPath(new URL("../..", import.meta.url)), "dist", "bench");
const RUN = join(BENCH, "run.js");

/** Every figure the harness prints, at any size. */
const FIGURES = [
  "SQL floor, gaffer's schema: batch of 1000 (jobs/s)",
  "SQL floor, gaffer's schema: claim + complete by 500 (jobs/s)",
  "SQL floor, bare schema: batch of 1000 (jobs/s)",
  "SQL floor, bare schema: claim + complete by 500 (jobs/s)",
  "SQL floor, gaffer's schema: claims of 100, completions by 200 (jobs/s)",
  "submit batch / its SQL floor in the same run",
  "drain / its SQL floor in the same run",
  "submit single (jobs/s, 32 connections)",
  "express echo (POSTs/s, 32 connections)",
  "submit / express ratio",
  "submit single: master CPU a job",
  "submit batch: master CPU a job",
  "drain (jobs/s, 2 workers)",
  "drain: completions recorded",
  "drain: master CPU a job",
  "drain: worker CPU a job it ran",
  "drain: jobs a claim request",
  "drain: jobs a results request",
  "drain, store on its own thread (jobs/s)",
  "drain, store on its own thread / the default's",
  "drain, store on its own thread: master CPU a job",
  "plainjob drain (jobs/s, 2 worker processes)",
  "plainjob: worker CPU a job",
  "drain / plainjob's in the same run",
  "dispatch latency p50 (ms)",
  "dispatch latency p99 (ms)",
  "wait answer after the result p99 (ms)",
  "claim cost ratio",
  "bulk cancel of 10,000 jobs",
  "bulk retry of 10,000 jobs",
  "heartbeat p99 (ms)",
  "master RSS (MB)",
];

let bench: ChildProcess | undefined;

afterEach(() => {
  // The harness runs in its own process group: this ends it and every master and worker it started.
  if (bench?.pid && bench.exitCode === null) process.kill(-bench.pid, "SIGKILL");
  bench = undefined;
  removeTempDirs();
});

describe("npm run bench", () => {
  it("runs every scenario at --size tiny and writes the figures with their targets (the jobs with payloads and results)", async () => {
    const out = join(tempDir(), "bench.json");
    let output = "";
    bench = spawn(process.execPath, [RUN, "--size", "tiny", "--payload-bytes", "256", "--result-bytes", "512", "--out", out], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    bench.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    bench.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => bench?.on("exit", resolve));
    expect(code, output).toBe(0);

    const report = JSON.parse(readFileSync(out, "utf8")) as {
      settings: { size: string; payload_bytes: number; result_bytes: number; master_env: Record<string, string> };
      figures: Record<string, { median: number; runs: number[]; target: string }>;
    };
    expect(report.settings.size).toBe("tiny");
    expect(report.settings.payload_bytes).toBe(256);
    // The drain checks that each completed job holds its handler's 512-byte result.
    expect(report.settings.result_bytes).toBe(512);
    // Measured with the shipped durability, never a weaker setting.
    expect(report.settings.master_env.GAFFER_DB_SYNCHRONOUS).toBe("full");
    for (const name of FIGURES) {
      const figure = Object.entries(report.figures).find(([key]) => key.startsWith(name.split(" (")[0] ?? name));
      expect(figure, `${name} in ${Object.keys(report.figures).join(", ")}`).toBeDefined();
      expect(Number.isFinite(figure?.[1].median), name).toBe(true);
      // A handler can start before its submitter reads the answer (a dispatch latency of 0), and a waiter hear before the node does.
      if (name.startsWith("dispatch latency") || name.startsWith("wait answer")) expect(figure?.[1].median, name).toBeGreaterThanOrEqual(0);
      else expect(figure?.[1].median, name).toBeGreaterThan(0);
    }
    expect(report.figures["drain: completions recorded"]?.median).toBe(1);
    // Every submit answered 2xx; a load that met others would say which on stderr.
    expect(report.figures["non-2xx answers"]?.median).toBe(0);
    expect(output).not.toContain("answers not 2xx");
    expect(report.figures["drain, store on its own thread: completions recorded"]?.median).toBe(1);
    // Targeted figures carry their verdict, so the table says what was missed.
    expect(Object.values(report.figures).filter((f) => /ok|MISSED/.test(f.target)).length).toBeGreaterThanOrEqual(8);
    expect(output).toMatch(/medians of 1 run\(s\), size tiny, submitted and drained payloads of 256 bytes, drained results of 512 bytes/);
  }, 240_000);

  it("measures the store in process and on its thread in turns (store-thread.js, small)", async () => {
    let output = "";
    bench = spawn(process.execPath, [join(BENCH, "store-thread.js"), "--jobs", "300", "--rounds", "1", "--spin", "0", "--loops", "2"], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    bench.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    bench.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => bench?.on("exit", resolve));
    expect(code, output).toBe(0);
    expect(output).toMatch(/round 1, in process {2}: \d+ jobs\/s, [\d.]+ µs of CPU a job/);
    expect(output).toMatch(/round 1, on its thread: \d+ jobs\/s, [\d.]+ µs of CPU a job/);
  }, 60_000);
});
