import type { Migration } from '@switchyard/db';
import * as sleepPolicies from './migrations/2026_11_23_0001_sleep_policies.js';

// Frozen: a shipped migration is never edited; change the schema with a new file in migrations/.
// Names are the ids recorded in each database: never rename one.
// tenant_id leads the key so the table can be distributed by tenant (Citus). The checks
// repeat the contract's bounds so a row can never hold a policy the schema would refuse.
export const migrations: Record<string, Migration> = {
  '2026_11_23_0001_sleep_policies': sleepPolicies,
};
