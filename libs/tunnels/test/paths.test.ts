import { describe, expect, it } from 'vitest';
import { applyProbe, choosePath, failureText, firstHealth, type PathHealth, type PathKind, type ProbeResult, type RiseFall } from '../src/index.js';

// The rules with a fake clock: `now` is whatever the test says it is.

const ok = (latencyMs = 5): ProbeResult => ({ ok: true, latencyMs });
const fail = (reason = 'ECONNREFUSED'): ProbeResult => ({ ok: false, reason });

/** Paths and a current choice driven through time, as the forwarder drives them. */
function tunnel(kinds: PathKind[], holdDownMs: number, rf: RiseFall = { fall: 3, rise: 1 }) {
  let now = 0;
  let paths = kinds.map((k) => firstHealth(k, ok(), now));
  let current = choosePath(paths, undefined, now, holdDownMs).kind;
  const reasons: string[] = [];
  const decide = () => {
    const c = choosePath(paths, current, now, holdDownMs);
    if (c.kind !== current) reasons.push(c.reason!);
    current = c.kind;
  };
  return {
    get current() {
      return current;
    },
    reasons,
    health: (k: PathKind) => paths.find((p) => p.kind === k)!,
    /** One probe of `kind` at `at` ms, then a choice, as after every probe. */
    probe(kind: PathKind, result: ProbeResult, at: number) {
      now = at;
      paths = paths.map((p) => (p.kind === kind ? applyProbe(p, result, now, rf) : p));
      decide();
    },
    /** A choice at `at` without a probe: a new connection arriving. */
    connect(at: number) {
      now = at;
      decide();
      return current;
    },
  };
}

describe('firstHealth', () => {
  it('lets the first probe decide, with nothing to weigh it against', () => {
    expect(firstHealth('ssh', ok(12), 100)).toEqual({ kind: 'ssh', up: true, failures: 0, successes: 1, latencyMs: 12, lastError: undefined, since: 100 });
    expect(firstHealth('ssh', fail('ETIMEDOUT'), 100)).toEqual({ kind: 'ssh', up: false, failures: 1, successes: 0, latencyMs: undefined, lastError: 'ETIMEDOUT', since: 100 });
  });
});

describe('applyProbe', () => {
  it('takes an up path down at the fall-th failure in a row, and says since when', () => {
    let h = firstHealth('wireguard', ok(3), 0);
    h = applyProbe(h, fail(), 1000, { fall: 3, rise: 1 });
    h = applyProbe(h, fail(), 2000, { fall: 3, rise: 1 });
    expect(h).toMatchObject({ up: true, failures: 2, since: 0, lastError: 'ECONNREFUSED' });
    h = applyProbe(h, fail('ETIMEDOUT'), 3000, { fall: 3, rise: 1 });
    expect(h).toMatchObject({ up: false, failures: 3, successes: 0, since: 3000, lastError: 'ETIMEDOUT' });
    // The last good latency stays on record; `up` says it is not current.
    expect(h.latencyMs).toBe(3);
  });

  it('starts the count again after a success between failures', () => {
    let h = firstHealth('wireguard', ok(), 0);
    for (const [i, r] of [fail(), fail(), ok(), fail(), fail()].entries()) h = applyProbe(h, r, i, { fall: 3, rise: 1 });
    expect(h).toMatchObject({ up: true, failures: 2 });
  });

  it('brings a down path up at the rise-th success in a row, keeping the last error', () => {
    const rf = { fall: 1, rise: 2 };
    let h = firstHealth('ssh', fail(), 0);
    h = applyProbe(h, ok(7), 1000, rf);
    expect(h).toMatchObject({ up: false, successes: 1, failures: 0, latencyMs: 7 });
    h = applyProbe(h, fail(), 2000, rf);
    h = applyProbe(h, ok(), 3000, rf);
    expect(h.up).toBe(false);
    h = applyProbe(h, ok(4), 4000, rf);
    expect(h).toMatchObject({ up: true, successes: 2, since: 4000, latencyMs: 4, lastError: 'ECONNREFUSED' });
  });
});

describe('choosePath', () => {
  it('takes the first path in order while it is up', () => {
    const t = tunnel(['wireguard', 'ssh', 'direct'], 30_000);
    expect(t.current).toBe('wireguard');
    t.probe('ssh', fail(), 1000);
    t.probe('wireguard', ok(), 1000);
    expect(t.current).toBe('wireguard');
    expect(t.reasons).toEqual([]);
  });

  it('fails over when the current path goes down, saying why', () => {
    const t = tunnel(['wireguard', 'ssh', 'direct'], 30_000);
    for (const at of [1000, 2000]) t.probe('wireguard', fail(), at);
    expect(t.current).toBe('wireguard');
    t.probe('wireguard', fail(), 3000);
    expect(t.current).toBe('ssh');
    expect(t.reasons).toEqual(['switched to ssh: wireguard probe failed 3× (ECONNREFUSED)']);
  });

  it('fails back only once the preferred path has been up for the hold-down', () => {
    const t = tunnel(['wireguard', 'ssh'], 30_000, { fall: 1, rise: 1 });
    t.probe('wireguard', fail(), 1000);
    expect(t.current).toBe('ssh');
    t.probe('wireguard', ok(), 2000);
    expect(t.health('wireguard')).toMatchObject({ up: true, since: 2000 });
    expect(t.connect(2001)).toBe('ssh');
    expect(t.connect(31_999)).toBe('ssh');
    expect(t.connect(32_000)).toBe('wireguard');
    expect(t.reasons).toEqual(['switched to ssh: wireguard probe failed 1× (ECONNREFUSED)', 'back to wireguard: healthy for 30 s']);
  });

  it('starts the hold-down again when the preferred path flaps during it', () => {
    const t = tunnel(['wireguard', 'ssh'], 30_000, { fall: 1, rise: 1 });
    t.probe('wireguard', fail(), 1000);
    t.probe('wireguard', ok(), 2000);
    t.probe('wireguard', fail(), 20_000);
    t.probe('wireguard', ok(), 21_000);
    expect(t.connect(33_000)).toBe('ssh');
    expect(t.connect(50_999)).toBe('ssh');
    expect(t.connect(51_000)).toBe('wireguard');
  });

  it('leaves a current path that went down for the best up path at once, hold-down or not', () => {
    const t = tunnel(['wireguard', 'ssh', 'direct'], 30_000, { fall: 1, rise: 1 });
    t.probe('wireguard', fail(), 1000);
    t.probe('ssh', fail('ETIMEDOUT'), 1000);
    expect(t.current).toBe('direct');
    // Both come back; neither has been up for the hold-down yet.
    t.probe('wireguard', ok(), 5000);
    t.probe('ssh', ok(), 5000);
    expect(t.connect(6000)).toBe('direct');
    t.probe('direct', fail('EHOSTUNREACH'), 7000);
    expect(t.current).toBe('wireguard');
    expect(t.reasons.at(-1)).toBe('back to wireguard: direct probe failed 1× (EHOSTUNREACH)');
  });

  it('returns to a middle path whose hold-down ended before the first one', () => {
    const t = tunnel(['wireguard', 'ssh', 'direct'], 10_000, { fall: 1, rise: 1 });
    t.probe('wireguard', fail(), 0);
    t.probe('ssh', fail(), 0);
    t.probe('ssh', ok(), 1000);
    t.probe('wireguard', ok(), 5000);
    expect(t.connect(10_999)).toBe('direct');
    expect(t.connect(11_000)).toBe('ssh');
    expect(t.connect(15_000)).toBe('wireguard');
    expect(t.reasons.slice(-2)).toEqual(['back to ssh: healthy for 10 s', 'back to wireguard: healthy for 10 s']);
  });

  it('has no path while none is up, and says what each one last failed with', () => {
    const t = tunnel(['wireguard', 'ssh'], 30_000, { fall: 1, rise: 1 });
    t.probe('wireguard', fail(), 1000);
    t.probe('ssh', fail('ETIMEDOUT'), 1000);
    expect(t.current).toBeUndefined();
    expect(t.reasons.at(-1)).toBe('no healthy path: wireguard probe failed 1× (ECONNREFUSED); ssh probe failed 1× (ETIMEDOUT)');
    // From no path, any up path is taken at once.
    t.probe('ssh', ok(), 2000);
    expect(t.current).toBe('ssh');
  });

  it('names the first choice and the preferred paths it passed over', () => {
    const up = firstHealth('wireguard', ok(), 0);
    expect(choosePath([up, firstHealth('ssh', ok(), 0)], undefined, 0, 30_000)).toEqual({ kind: 'wireguard', reason: 'using wireguard: first path, healthy' });
    expect(choosePath([firstHealth('wireguard', fail(), 0), firstHealth('ssh', ok(), 0)], undefined, 0, 30_000)).toEqual({
      kind: 'ssh',
      reason: 'using ssh: wireguard probe failed 1× (ECONNREFUSED)',
    });
    // No path is explained even when there was none before.
    expect(choosePath([firstHealth('ssh', fail(), 0)], undefined, 0, 30_000)).toEqual({ kind: undefined, reason: 'no healthy path: ssh probe failed 1× (ECONNREFUSED)' });
  });

  it('fails back at once with no hold-down', () => {
    const t = tunnel(['wireguard', 'ssh'], 0, { fall: 1, rise: 1 });
    t.probe('wireguard', fail(), 1000);
    t.probe('wireguard', ok(), 2000);
    expect(t.current).toBe('wireguard');
    expect(t.reasons.at(-1)).toBe('back to wireguard: healthy for 0 s');
  });
});

describe('failureText', () => {
  it('describes a path on its way back up by its good probes', () => {
    const rf = { fall: 1, rise: 3 };
    let h: PathHealth = firstHealth('ssh', fail('ECONNRESET'), 0);
    h = applyProbe(h, ok(), 1, rf);
    expect(failureText(h)).toBe('ssh down, 1 good probe since it failed (ECONNRESET)');
  });
});
