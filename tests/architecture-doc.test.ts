import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { catalog, CONSUMERS, STREAMS, type Subject } from '@switchyard/contracts';

/** The subject table docs/architecture.md must contain, rendered from the contracts. */
function subjectTable(): string {
  const rows = (Object.keys(catalog) as Subject[]).map((s) => {
    const d = catalog[s];
    const stream = Object.values(STREAMS).find((st) => (st.subjects as readonly string[]).includes(s))?.name ?? 'core';
    if (d.type === 'command') return `| \`${s}\` | command | ${stream} | ${d.producers.join(', ')} | ${d.consumer} | ${d.summary} |`;
    if (d.type === 'event') return `| \`${s}\` | event | ${stream} | ${d.producers.join(', ')} | ${d.consumers.join(', ')} | ${d.summary} |`;
    return `| \`${s}\` | request | core | ${d.requesters.join(', ')} | ${d.responder} | ${d.summary} |`;
  });
  return ['| subject | type | stream | producers | consumers | what it says |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

function consumerTable(): string {
  const rows = Object.values(CONSUMERS).map(
    (c) => `| \`${c.durable}\` | ${c.service} | ${c.stream} | ${'filter' in c ? `\`${c.filter}\`` : 'whole stream'} | ${c.ackWaitMs / 1000} s | ${c.maxDeliver} deliveries |`,
  );
  return ['| durable consumer | service | stream | filter | redelivered after (crash) | dead-lettered after |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

describe('docs/architecture.md', () => {
  const doc = readFileSync(new URL('../docs/architecture.md', import.meta.url), 'utf8');
  it('lists every subject with its producers and consumers, as the contracts define them', () => {
    expect(doc, `update the subject table in docs/architecture.md to:\n\n${subjectTable()}\n`).toContain(subjectTable());
  });
  it('lists every durable consumer', () => {
    expect(doc, `update the consumer table in docs/architecture.md to:\n\n${consumerTable()}\n`).toContain(consumerTable());
  });
});
