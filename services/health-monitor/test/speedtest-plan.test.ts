import { describe, expect, it } from 'vitest';
import { PUBLIC_SPEEDTEST_URL, planFor, SpeedTestError } from '../src/speedtest.js';

const hrefs = (p: ReturnType<typeof planFor>) => ({
  latency: p.latency.href,
  download: p.download.href,
  downloadBytes: p.downloadBytes,
  upload: p.upload.href,
  uploadBytes: p.uploadBytes,
});

describe('speed-test plan', () => {
  it("speaks Switchyard's protocol to a configured server", () => {
    expect(hrefs(planFor('http://127.0.0.1:4000', 200_000))).toEqual({
      latency: 'http://127.0.0.1:4000/204',
      download: 'http://127.0.0.1:4000/download?bytes=200000',
      downloadBytes: 200_000,
      upload: 'http://127.0.0.1:4000/upload',
      uploadBytes: 200_000,
    });
    expect(planFor('http://speed.example/base/', 1024).download.href).toBe('http://speed.example/base/download?bytes=1024');
  });

  it("by default fetches the public server's file nearest the bytes asked", () => {
    expect(PUBLIC_SPEEDTEST_URL).toBe('http://speedtest.tele2.net/');
    expect(hrefs(planFor(PUBLIC_SPEEDTEST_URL, 10_000_000))).toEqual({
      latency: 'http://speedtest.tele2.net/1KB.zip',
      download: 'http://speedtest.tele2.net/10MB.zip',
      downloadBytes: 10_485_760,
      upload: 'http://speedtest.tele2.net/upload.php',
      uploadBytes: 10_000_000,
    });
    expect(planFor(PUBLIC_SPEEDTEST_URL, 2_000_000).download.href).toBe('http://speedtest.tele2.net/1MB.zip');
    expect(planFor(PUBLIC_SPEEDTEST_URL, 50_000_000).download.href).toBe('http://speedtest.tele2.net/100MB.zip');
    expect(planFor(PUBLIC_SPEEDTEST_URL, 1_000_000_000).downloadBytes).toBe(104_857_600);
    expect(planFor(PUBLIC_SPEEDTEST_URL, 1024).downloadBytes).toBe(1_048_576);
  });

  it('refuses a target that is not plain http', () => {
    expect(() => planFor('https://speed.example/', 1024)).toThrow(SpeedTestError);
    expect(() => planFor('not a url', 1024)).toThrow(/not a URL/);
  });
});
