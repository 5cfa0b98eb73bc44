import { describe, expect, it } from 'vitest';
import { type BackoffPolicy, backoffDelay, classifySshLine, DEFAULT_BACKOFF } from '../src/index.js';

const policy: BackoffPolicy = { initialMs: 500, factor: 2, maxMs: 8000, jitter: 0.5 };

describe('backoff between SSH sessions', () => {
  it('doubles per failure in a row up to the cap, without jitter at random() = 0', () => {
    expect([0, 1, 2, 3, 4, 5, 50, 5000].map((n) => backoffDelay(n, policy, () => 0))).toEqual([500, 1000, 2000, 4000, 8000, 8000, 8000, 8000]);
  });

  it('jitter takes at most its share off, never adds', () => {
    expect(backoffDelay(3, policy, () => 0.999999)).toBe(2000);
    expect(backoffDelay(10, policy, () => 0.5)).toBe(6000);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(i % 8, DEFAULT_BACKOFF);
      expect(d).toBeGreaterThanOrEqual(DEFAULT_BACKOFF.initialMs * (1 - DEFAULT_BACKOFF.jitter));
      expect(d).toBeLessThanOrEqual(DEFAULT_BACKOFF.maxMs);
    }
  });

  it('refuses a policy that would spin or grow without bound', () => {
    expect(() => backoffDelay(1, { ...policy, initialMs: 0 })).toThrow(/out of range/);
    expect(() => backoffDelay(1, { ...policy, maxMs: 100 })).toThrow(/out of range/);
    expect(() => backoffDelay(1, { ...policy, jitter: 2 })).toThrow(/out of range/);
  });
});

describe("what ssh's stderr says", () => {
  it('the forward being up, with its port', () => {
    expect(classifySshLine('debug1: remote forward success for: listen 127.0.0.1:40001, connect 10.78.0.2:8080')).toEqual({ kind: 'forward-up', remotePort: 40001 });
  });

  it('reasons worth showing, and noise that is said on every run', () => {
    for (const reason of [
      'switchyard-tunnel@10.77.0.1: Permission denied (publickey).',
      'Host key verification failed.',
      'Error: remote port forwarding failed for listen port 40002',
      'ssh: connect to host 10.77.0.1 port 2222: Connection refused',
    ]) {
      expect(classifySshLine(reason)).toEqual({ kind: 'reason', text: reason });
    }
    for (const noise of [
      'OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026',
      'debug1: Reading configuration data none',
      'Transferred: sent 3436, received 3100 bytes, in 2.4 seconds',
      '',
    ]) {
      expect(classifySshLine(noise)).toEqual({ kind: 'noise' });
    }
  });
});
