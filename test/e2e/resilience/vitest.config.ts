// The resilience run (~6 min: 200 pods through the kubelet, the agent SIGKILLed ~100 times),
// kept out of the e2e tier's include (test/e2e/*.test.ts):
//   npx vitest run --config test/e2e/resilience/vitest.config.ts   (TARTAN_E2E_CYCLES=200)
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('../../..', import.meta.url).pathname,
    include: ['test/e2e/resilience/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 3_600_000,
    hookTimeout: 300_000,
  },
});
