import type { ServiceName } from '@switchyard/contracts';

/** What one service may touch in Postgres and Redis. */
export interface ServiceAccess {
  /** Present when the service keeps state in Postgres; its role owns the tables it migrates. */
  readonly postgres?: {
    /** The service's migration history table (migrateToLatest's `table`; `<table>_lock` too). */
    readonly migrationsTable: string;
    /**
     * Tables made before each service had a role, when one shared role ran every migration.
     * Their ownership is handed to the service's role at start. Frozen like the migrations that
     * made them: tables of later migrations are created by the role itself.
     */
    readonly handedOver: readonly string[];
    /**
     * The last migration that ran as the shared role; later ones run as the service's role.
     * Absent for a service that kept state only after the roles came: nothing to hand over.
     */
    readonly lastShared?: string;
  };
  readonly redis: {
    /** Key patterns the service reads and writes (it is their only writer). */
    readonly keys: readonly string[];
    /** Key patterns of other services it only reads. */
    readonly readKeys: readonly string[];
    /** Commands beyond the common set (see REDIS_COMMON_COMMANDS). */
    readonly commands: readonly string[];
  };
}

const noRedis = { keys: [], readKeys: [], commands: [] } as const;

/**
 * The one definition of each service's data access. Setup (infra/start.sh), compose and the
 * testkit derive roles, grants and ACL users from it; a service that starts using a new Redis
 * key prefix or a new store gets NOPERM until its row says so.
 */
export const ACCESS: Readonly<Record<ServiceName, ServiceAccess>> = {
  'api-gateway': {
    postgres: {
      migrationsTable: 'api_gateway_migrations',
      handedOver: ['tenants', 'api_keys', 'orders', 'outbox', 'speed_tests', 'activity', 'proxy_users'],
      lastShared: '2026_12_02_0006_proxy_users',
    },
    redis: {
      // rate-limiter-flexible's budgets: node additions (keyPrefix switchyard:node-adds, then
      // ':<tenant>') and the API's per key and per address (API_RATE_LIMIT_PREFIX, switchyard:rl).
      keys: ['switchyard:node-adds:*', 'switchyard:rl:*'],
      // Denied connections counted by the load balancer and the activator, shown by the API.
      readKeys: ['acl:*'],
      // rate-limiter-flexible increments and sets the expiry in one Lua script.
      commands: ['+evalsha', '+eval'],
    },
  },
  'exit-node-manager': {
    postgres: { migrationsTable: 'exit_node_manager_migrations', handedOver: ['pools', 'nodes', 'pool_drains'], lastShared: '2026_12_02_0004_pool_drains' },
    redis: { keys: ['node:*', 'stats:*'], readKeys: [], commands: [] },
  },
  'health-monitor': { redis: { keys: ['health:*'], readKeys: [], commands: [] } },
  'load-balancer': { redis: { keys: ['lb:*', 'acl:*'], readKeys: [], commands: [] } },
  'sleep-controller': {
    postgres: { migrationsTable: 'sleep_controller_migrations', handedOver: ['sleep_policies'], lastShared: '2026_11_23_0001_sleep_policies' },
    redis: noRedis,
  },
  'socket-activator': {
    postgres: { migrationsTable: 'socket_activator_migrations', handedOver: ['activator_catches'], lastShared: '2026_12_01_0001_activator_catches' },
    redis: { keys: ['acl:*'], readKeys: [], commands: [] },
  },
  'tunnel-manager': { postgres: { migrationsTable: 'tunnel_manager_migrations', handedOver: [] }, redis: noRedis },
  'storage-sync': { redis: noRedis },
};

/** The services with a Postgres role, in a stable order. */
export const POSTGRES_SERVICES = (Object.keys(ACCESS) as ServiceName[]).filter((s) => ACCESS[s].postgres !== undefined);

/** The service's role or user name: `<prefix>_<service with underscores>`, e.g. switchyard_api_gateway. */
export function accessName(prefix: string, service: ServiceName): string {
  return `${prefix}_${service.replaceAll('-', '_')}`;
}

/** Every table the shared role may have made that a service's role must own: its own and its migration history. */
export function ownedTables(service: ServiceName): string[] {
  const pg = ACCESS[service].postgres;
  if (!pg?.lastShared) return [];
  return [...pg.handedOver, pg.migrationsTable, `${pg.migrationsTable}_lock`];
}

export type Store = 'postgres' | 'redis';

/** The variable (compose's .env) holding a service's password for a store, e.g. PG_PASSWORD_API_GATEWAY. */
export function passwordVariable(store: Store, service: ServiceName): string {
  return `${store === 'postgres' ? 'PG' : 'REDIS'}_PASSWORD_${service.toUpperCase().replaceAll('-', '_')}`;
}
