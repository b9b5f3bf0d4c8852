import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["./src/util/polyfill.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Multi-process tests spawn real peers; keep the 2-core CI box from oversubscribing.
    maxWorkers: 2,
  },
});
