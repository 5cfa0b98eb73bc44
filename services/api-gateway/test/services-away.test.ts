import { describe, expect, it } from 'vitest';
import { RequestError, TimeoutError } from '@nats-io/transport-node';
import { ServiceError } from '@nats-io/services';
import { basicHeader, testApp } from './fakes.js';

// What the gateway answers for each error the NATS client gives a query (the bus tells them
// apart by class: isBusUnavailable).
describe('a query to another service', () => {
  const strategyThrowing = (err: Error, natsConnected = true) => {
    const { app } = testApp(
      {
        'lb.req.strategy': () => {
          throw err;
        },
      },
      { natsConnected },
    );
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

  it('is a 503 naming exit-node-manager when it is too busy to cut the pool snapshot', async () => {
    let asked = 0;
    const { app } = testApp({
      'pool.req.snapshot': () => {
        asked++;
        return { pools: [], nodes: [], expired: true };
      },
    });
    const res = await app.inject({ method: 'GET', url: '/api/countries', headers: { authorization: basicHeader() } });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('2');
    expect(res.json().detail).toBe('exit-node-manager is unavailable; retry shortly');
    expect(asked).toBe(3);
  });

  it('is a 500 when the service answered with an error, whatever its message says', async () => {
    for (const err of [new ServiceError(500, 'internal error'), new ServiceError(500, 'upstream timeout'), new Error('no responders, says the bug')]) {
      const res = await strategyThrowing(err);
      expect(res.statusCode, err.message).toBe(500);
      expect(res.json(), err.message).toMatchObject({ error: 'internal', message: 'internal error' });
    }
  });
});
