import { describe, expect, it } from 'vitest';
import { ClosedConnectionError, ConnectionError, DrainingConnectionError, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import { ServiceError } from '@nats-io/services';
import { isNatsUnavailable } from '../src/nats-errors.js';
import { basicHeader, testApp } from './fakes.js';

describe('isNatsUnavailable', () => {
  it('knows the client errors of a missing responder, a timeout and a lost connection', () => {
    for (const err of [
      new RequestError("no responders: 'lb.req.strategy'", { cause: new NoRespondersError('lb.req.strategy') }),
      new NoRespondersError('lb.req.strategy'),
      new TimeoutError(),
      new RequestError('connection disconnected'),
      new ClosedConnectionError(),
      new DrainingConnectionError(),
      new ConnectionError('connection refused'),
    ]) {
      expect(isNatsUnavailable(err), `${err.name}: ${err.message}`).toBe(true);
    }
  });

  it('goes by the class, not by what an error calls itself', () => {
    // A service that answered with an error is there; so is a bug that mentions a timeout.
    for (const err of [
      new ServiceError(500, 'internal error: upstream timeout'),
      new Error('timeout while parsing'),
      Object.assign(new Error('no responders'), { name: 'RequestError' }),
      'timeout',
      undefined,
    ]) {
      expect(isNatsUnavailable(err), String(err)).toBe(false);
    }
  });
});

describe('a query to a service that is away', () => {
  const strategyThrowing = (err: Error, natsConnected = true) => {
    const { app } = testApp({ 'lb.req.strategy': () => { throw err; } }, { natsConnected });
    return app.inject({ method: 'GET', url: '/api/load-balancer/strategy', headers: { authorization: basicHeader() } });
  };

  it('is a 503 naming the service after a timeout', async () => {
    const res = await strategyThrowing(new TimeoutError());
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('2');
    expect(res.json().detail).toBe('load-balancer is unavailable; retry shortly');
  });

  it('is a 503 naming the bus when NATS itself is away', async () => {
    const res = await strategyThrowing(new RequestError('connection disconnected'), false);
    expect(res.statusCode).toBe(503);
    expect(res.json().detail).toBe('the message bus is unavailable; retry shortly');
  });

  it('is a 500 when the service answered with an error', async () => {
    const res = await strategyThrowing(new ServiceError(500, 'internal error'));
    expect(res.statusCode).toBe(500);
    expect(res.json()).toMatchObject({ error: 'internal', message: 'internal error' });
  });
});
