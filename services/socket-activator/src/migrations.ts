import type { Migration } from '@switchyard/db';
import * as activatorCatches from './migrations/2026_12_01_0001_activator_catches.js';

// Frozen: a shipped migration is never edited; change the schema with a new file in migrations/.
// Names are the ids recorded in each database: never rename one.
export const migrations: Record<string, Migration> = {
  '2026_12_01_0001_activator_catches': activatorCatches,
};
