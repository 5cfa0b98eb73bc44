import { describe, expect, it } from 'vitest';
import { ClosedConnectionError, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import { isBusUnavailable } from '../src/errors.js';

describe('isBusUnavailable', () => {
  it('knows the client errors of an absent bus or service, also as a cause', () => {
    expect(isBusUnavailable(new TimeoutError())).toBe(true);
    expect(isBusUnavailable(new ClosedConnectionError())).toBe(true);
    expect(isBusUnavailable(new RequestError('no responders: node.req.list', { cause: new NoRespondersError('node.req.list') }))).toBe(true);
    expect(isBusUnavailable(new Error('wrapped', { cause: new TimeoutError() }))).toBe(true);
  });

  it('does not mistake an error that only sounds like one', () => {
    const named = new Error('timeout while parsing');
    named.name = 'TimeoutError';
    expect(isBusUnavailable(named)).toBe(false);
    expect(isBusUnavailable(new Error('no responders'))).toBe(false);
    expect(isBusUnavailable('timeout')).toBe(false);
    expect(isBusUnavailable(undefined)).toBe(false);
  });
});
