import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Tests that start masters, workers and CLI processes share 2 cores with the rest of the
    // suite: with the cores busy, ones that take 6-12 s took 15-20 s, and one ran out at 20.
    // A hang still ends the test, a minute later.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two files at a time on the 2-core machines here (vitest's default is one fewer than the
    // cores, so one): most files wait on processes, timers and the disk, and the suite ran at
    // about 70 % of one core.
    maxWorkers: 2,
    globalSetup: ["test/helpers/postgres-teardown.ts"],
  },
});
