import { defineConfig } from 'vitest/config';

// Two tiers. `unit` needs no NATS, Postgres, Redis or Docker (npm run test:unit); `integration`
// is every file that does: tests/integration/ and any `*.int.test.ts` next to a lib or service.
// `npm test` runs both.
const INTEGRATION = ['tests/integration/**/*.test.ts', 'libs/*/test/**/*.int.test.ts', 'services/*/test/**/*.int.test.ts'];

export default defineConfig({
  test: {
    // Integration files each start their own NATS server, database and service processes;
    // two at a time keeps a 2-core machine responsive.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 90_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['libs/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'tests/*.test.ts'],
          exclude: ['**/node_modules/**', '**/*.int.test.ts'],
        },
      },
      { extends: true, test: { name: 'integration', include: INTEGRATION } },
    ],
  },
});
