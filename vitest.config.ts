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
    globalSetup: ["test/helpers/postgres-teardown.ts"],
  },
});
