import type { BlockList } from 'node:net';
import { parseNetworks } from '@switchyard/config';
import type { AclGate } from '@switchyard/service-kit';
import type { NodeCatch } from './catches.js';
import type { PoolTags } from './pool-tags.js';

export type Verdict = 'allowed' | 'denied' | 'unknown';

/** ACTIVATOR_ACL_TRUSTED_SOURCES (checked against its schema) as a BlockList. */
export const trustedSources = parseNetworks;

/**
 * The activator's `admit` edge: the tenant's policy on a connection for one of its nodes, with
 * the client's address as source and the node's pool's tags and the dialled port as
 * destination. A connection from a trusted front door (the load balancer, which judged it
 * with its user) passes. `unknown` while the policies, or for a tenant with a policy the pools'
 * tags, were never read: a guarded node cannot be told from an open one.
 */
export function aclAdmission(acl: AclGate, tags: PoolTags, trusted: BlockList): (c: Pick<NodeCatch, 'tenantId' | 'poolId'>, client: string | undefined, port: number) => Verdict {
  return (c, client, port) => {
    if (acl.idle) return 'allowed';
    const address = client?.startsWith('::ffff:') && client.includes('.') ? client.slice(7) : (client ?? '');
    if (address && trusted.check(address, address.includes(':') ? 'ipv6' : 'ipv4')) return 'allowed';
    if (!acl.ready) return 'unknown';
    if (!acl.book.policyOf(c.tenantId)) return 'allowed';
    if (!tags.loaded) return 'unknown';
    return acl.allows(c.tenantId, { address }, { tags: tags.of(c.poolId), port }, 'activator') ? 'allowed' : 'denied';
  };
}
