import { describe, expect, it } from 'vitest';
import { parseEvent } from '../src/docker-events.js';

const actor = (attrs: Record<string, string> = {}) => ({ ID: 'c0ffee', Attributes: { 'io.switchyard.node': 'n1', ...attrs } });

describe('parseEvent', () => {
  it('reads a die with its exit code and labels', () => {
    expect(parseEvent({ Type: 'container', Action: 'die', Actor: actor({ exitCode: '137' }), timeNano: 1700000000123456800 })).toEqual({
      action: 'die',
      containerId: 'c0ffee',
      labels: { 'io.switchyard.node': 'n1', exitCode: '137' },
      exitCode: 137,
      timeNano: '1700000000123456800',
    });
  });

  it('splits the state out of a health_status action', () => {
    expect(parseEvent({ Type: 'container', Action: 'health_status: unhealthy', Actor: actor(), timeNano: 1 })).toMatchObject({
      action: 'health_status',
      health: 'unhealthy',
    });
    expect(parseEvent({ Type: 'container', Action: 'health_status: bogus', Actor: actor(), timeNano: 1 })).toBeNull();
  });

  it('keeps start, oom and destroy and ignores the rest', () => {
    for (const action of ['start', 'oom', 'destroy']) expect(parseEvent({ Type: 'container', Action: action, Actor: actor(), timeNano: 1 })?.action).toBe(action);
    expect(parseEvent({ Type: 'container', Action: 'exec_start: sh', Actor: actor(), timeNano: 1 })).toBeNull();
    expect(parseEvent({ Type: 'network', Action: 'connect', Actor: actor(), timeNano: 1 })).toBeNull();
    expect(parseEvent(null)).toBeNull();
    expect(parseEvent({ Type: 'container', Action: 'die' })).toBeNull();
  });
});
