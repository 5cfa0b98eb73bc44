import { randomBytes } from 'node:crypto';
import { SERVICE_NAMES, type ServiceName } from '@switchyard/contracts';
import { accessName, applyRedisUsers, deleteRedisUsers, roleUrl } from '@switchyard/roles';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';

export interface TestRedisUsers {
  /** The REDIS_URL of a service's own user. */
  urlFor(service: ServiceName): string;
  user(service: ServiceName): string;
  /** Deletes the users (ACL DELUSER): their connections are closed. */
  delete(): Promise<void>;
}

/**
 * Each service's Redis user (libs/roles), under names of this test's own (`prefix`, random
 * passwords), on the machine's Redis: shared with other tests, so its default user and other
 * users are left alone.
 */
export async function createTestRedisUsers(prefix: string): Promise<TestRedisUsers> {
  const users = SERVICE_NAMES.map((service) => ({ service, user: accessName(prefix, service), password: randomBytes(16).toString('hex') }));
  const admin = () => new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const run = async (fn: (r: Redis) => Promise<void>) => {
    const r = admin();
    try {
      await r.connect();
      await fn(r);
    } finally {
      r.disconnect();
    }
  };
  await run((r) => applyRedisUsers(r, users));
  const byService = new Map(users.map((u) => [u.service, u]));
  return {
    urlFor(service) {
      const u = byService.get(service)!;
      return roleUrl(REDIS_URL, u.user, u.password);
    },
    user: (service) => byService.get(service)!.user,
    delete: () =>
      run((r) =>
        deleteRedisUsers(
          r,
          users.map((u) => u.user),
        ),
      ),
  };
}
