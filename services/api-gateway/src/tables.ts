import type { ColumnType, CreatedAt, Generated, Json, Selectable, UpdatedAt } from '@switchyard/db';
import type { AclPolicy, ActivityKind, OrderStatus } from '@switchyard/contracts';
import type { Scope } from './scopes.js';

interface TenantTable {
  id: string;
  name: string;
  created_at: CreatedAt;
}

interface ApiKeyTable {
  tenant_id: string;
  id: string;
  name: string;
  /** sha256 of the key: keys are 192 random bits, so a fast hash is enough and lookups stay O(1). */
  key_hash: string;
  /** `admin` when scopes hold `admin`, else `member`: what the pool policy exempts. */
  role: 'admin' | 'member';
  /** Normalized (scopes.ts): no scope another one of the set implies. */
  scopes: Scope[];
  /** The key's first characters, shown in listings; null for keys made before 0007. */
  prefix: string | null;
  /** Null: never (the config key, and keys made before 0007). */
  expires_at: Date | null;
  /** Written at most about once a minute per key. */
  last_used_at: Date | null;
  /** The key of ADMIN_API_KEY: replaced, not rotated, when the config changes. */
  from_config: Generated<boolean>;
  /** The key whose caller made this one; null for config and first keys. */
  created_by: string | null;
  /** The key a rotation issued in this one's place. */
  replaced_by: string | null;
  created_at: CreatedAt;
  revoked_at: Date | null;
}

interface OrderTable {
  tenant_id: string;
  id: string;
  type: string;
  status: OrderStatus;
  request: Json<unknown>;
  result: Json<Record<string, unknown>>;
  reason: string | null;
  /** The client's Idempotency-Key: a retried POST returns this order instead of a new one. */
  idempotency_key: string | null;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

interface OutboxTable {
  tenant_id: string;
  id: string;
  /** Publication order across tenants. */
  seq: Generated<string>;
  subject: string;
  payload: Json<unknown>;
  traceparent: string | null;
  created_at: CreatedAt;
  published_at: Date | null;
}

interface SpeedTestTable {
  tenant_id: string;
  id: string;
  node_id: string;
  download_mbps: number;
  upload_mbps: number;
  latency_ms: number;
  tested_at: Date;
  created_at: CreatedAt;
}

interface ActivityTable {
  tenant_id: string;
  /** Recording order; the entry's public id. */
  seq: Generated<string>;
  /** The event this entry was made from (subject, subject's id, event time): one row per event. */
  source: string;
  pool_id: string | null;
  node_id: string | null;
  kind: ActivityKind;
  message: string;
  details: Json<Record<string, unknown>>;
  at: Date;
  recorded_at: CreatedAt;
}

interface ProxyUserTable {
  tenant_id: string;
  id: string;
  name: string;
  algorithm: 'scrypt';
  cost_n: number;
  cost_r: number;
  cost_p: number;
  /** base64 */
  salt: string;
  /** base64 of the scrypt key of the generated password; the password itself is never stored. */
  hash: string;
  created_at: CreatedAt;
  revoked_at: Date | null;
}

interface IdempotencyKeyTable {
  tenant_id: string;
  key: string;
  /** Hash of method, path, tenant and canonical body (idempotency/fingerprint.ts); never the body. */
  fingerprint: string;
  state: 'in_flight' | 'done';
  /** The holder's claim: only it (or whoever took a stale claim over) may finish the row. */
  token: string;
  response_status: number | null;
  response_headers: Json<Record<string, string>> | null;
  /** The body as sent, or sealed with SECRETS_KEY when `response_sealed`. */
  response_body: string | null;
  response_sealed: Generated<boolean>;
  created_at: CreatedAt;
  locked_at: Generated<Date>;
  completed_at: Date | null;
}

interface AclPolicyTable {
  tenant_id: string;
  /** Raised by every put and delete: enforcers order the changes by it. */
  version: number;
  /** The HuJSON text as put; null once deleted. */
  source: string | null;
  /** The document parsed and checked from `source` (what acl.evt.changed carries); null once deleted. */
  document: ColumnType<AclPolicy | null, string | null, string | null>;
  updated_at: UpdatedAt;
}

export interface Database {
  tenants: TenantTable;
  api_keys: ApiKeyTable;
  orders: OrderTable;
  outbox: OutboxTable;
  speed_tests: SpeedTestTable;
  activity: ActivityTable;
  proxy_users: ProxyUserTable;
  idempotency_keys: IdempotencyKeyTable;
  acl_policies: AclPolicyTable;
}

export type Order = Selectable<OrderTable>;
export type ApiKey = Selectable<ApiKeyTable>;
export type SpeedTest = Selectable<SpeedTestTable>;
export type Activity = Selectable<ActivityTable>;
export type ProxyUser = Selectable<ProxyUserTable>;
export type IdempotencyRecord = Selectable<IdempotencyKeyTable>;
export type AclPolicyRow = Selectable<AclPolicyTable>;
