import type { Selectable, UpdatedAt } from '@switchyard/db';

/** One pool's sleep policy; the fields of SleepPolicy, one column each. */
interface SleepPolicyTable {
  tenant_id: string;
  pool_id: string;
  enabled: boolean;
  idle_window_sec: number;
  min_awake: number;
  probe_interval_ms: number;
  probe_timeout_ms: number;
  updated_at: UpdatedAt;
}

export interface Database {
  sleep_policies: SleepPolicyTable;
}

export type SleepPolicyRow = Selectable<SleepPolicyTable>;
