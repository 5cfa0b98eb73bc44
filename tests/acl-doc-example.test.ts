import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadPolicy } from '@switchyard/acl';

// The example policy of docs/security.md is a policy the gateway accepts, and means what the
// prose around it says.
describe('docs/security.md, the ACL policy example', () => {
  const doc = readFileSync(new URL('../docs/security.md', import.meta.url), 'utf8');
  const example = /## ACL policy[\s\S]*?```hujson\n([\s\S]*?)\n```/.exec(doc)?.[1];

  it('parses, compiles and passes its own tests', () => {
    expect(example, 'a ```hujson block under "## ACL policy"').toBeDefined();
    const { failures, compiled } = loadPolicy(example!);
    expect(failures).toEqual([]);
    expect(compiled.rules).toBe(3);
  });

  it('decides as the prose says', () => {
    const { compiled } = loadPolicy(example!);
    expect(compiled.decide({ user: 'bob', address: '192.0.2.1' }, { tags: ['tag:web'], port: 443 })).toEqual({ allowed: true, rule: 0 });
    expect(compiled.decide({ user: 'carol', address: '192.0.2.1' }, { tags: ['tag:db'], port: 5433 })).toEqual({ allowed: true, rule: 1 });
    expect(compiled.decide({ address: '2001:db8:1:ff::9' }, { tags: [], port: 22 })).toEqual({ allowed: true, rule: 2 });
    expect(compiled.decide({ user: 'bob', address: '192.0.2.1' }, { tags: ['tag:db'], port: 5432 })).toEqual({ allowed: false, rule: null });
  });
});
