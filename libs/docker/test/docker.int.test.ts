import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerClient, ensureImagePresent, isConflict, isNotFound, labelFilters, Labels, type Docker } from '../src/index.js';
import { rejectionOf } from '@switchyard/testkit';

const suffix = `${process.pid}-${randomBytes(3).toString('hex')}`;
// An empty filesystem imported from a tarball: enough to create (not run) containers, no registry needed.
const image = `switchyard-test/empty:${suffix}`;
const containerName = `switchyard-docker-test-${suffix}`;

let docker: Docker;

// docker-modem keeps its connection settings as untyped fields.
type ModemFields = { socketPath?: string; host?: string; port?: string | number; protocol?: string };
function modemOf(client: Docker): ModemFields {
  return client.modem as unknown as ModemFields;
}

beforeAll(async () => {
  docker = createDockerClient({});
  const [repo, tag] = image.split(':');
  const emptyTar = Readable.from([Buffer.alloc(1024)]);
  const stream = await docker.importImage(emptyTar, { repo, tag });
  await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null, out: unknown) => (err ? reject(err) : resolve(out))));
});

afterAll(async () => {
  const leftovers = await docker.listContainers({ all: true, filters: { name: [containerName] } });
  for (const c of leftovers) await docker.getContainer(c.Id).remove({ force: true });
  await docker.getImage(image).remove({ force: true });
});

describe('createDockerClient', () => {
  it('talks to the local engine by default', async () => {
    expect(String(await docker.ping())).toBe('OK');
    expect(modemOf(docker).socketPath).toBe('/var/run/docker.sock');
  });

  it('uses a unix socket from DOCKER_HOST', async () => {
    const client = createDockerClient({ DOCKER_HOST: 'unix:///var/run/docker.sock' });
    expect(modemOf(client).socketPath).toBe('/var/run/docker.sock');
    expect(String(await client.ping())).toBe('OK');
  });

  it('uses a tcp address from DOCKER_HOST', () => {
    const client = createDockerClient({ DOCKER_HOST: 'tcp://10.1.2.3:2375' });
    expect(modemOf(client).host).toBe('10.1.2.3');
    expect(String(modemOf(client).port)).toBe('2375');
    expect(modemOf(client).protocol).toBe('http');
    expect(modemOf(client).socketPath).toBeUndefined();
  });

  it('rejects an unusable DOCKER_HOST by name', () => {
    expect(() => createDockerClient({ DOCKER_HOST: 'ssh://me@host' })).toThrow(/DOCKER_HOST scheme ssh:\/\//);
    expect(() => createDockerClient({ DOCKER_HOST: 'localhost' })).toThrow(/DOCKER_HOST/);
  });
});

describe('labelFilters', () => {
  it('builds key=value label filters', () => {
    expect(labelFilters({ [Labels.managed]: 'true', [Labels.pool]: 'jp-exit' })).toEqual({
      label: ['io.switchyard.managed=true', 'io.switchyard.pool=jp-exit'],
    });
  });

  it('finds a container by its labels, and only matching ones', async () => {
    // Not managed=true: a reconciler under test elsewhere on this engine must not adopt it.
    const labels = { [Labels.managed]: `test-${suffix}`, [Labels.node]: `node-${suffix}` };
    const created = await docker.createContainer({ name: containerName, Image: image, Cmd: ['/none'], Labels: labels });
    try {
      const found = await docker.listContainers({ all: true, filters: labelFilters(labels) });
      expect(found.map((c) => c.Id)).toEqual([created.id]);
      const none = await docker.listContainers({
        all: true,
        filters: labelFilters({ ...labels, [Labels.tenant]: 'nobody' }),
      });
      expect(none).toEqual([]);
    } finally {
      await created.remove({ force: true });
    }
  });
});

describe('error helpers', () => {
  it('isNotFound is true for a missing container, and only then', async () => {
    const err = await rejectionOf(docker.getContainer(`switchyard-missing-${suffix}`).inspect());
    expect(isNotFound(err)).toBe(true);
    expect(isConflict(err)).toBe(false);
  });

  it('isConflict is true for a name already taken', async () => {
    const first = await docker.createContainer({ name: containerName, Image: image, Cmd: ['/none'] });
    try {
      const err = await rejectionOf(docker.createContainer({ name: containerName, Image: image, Cmd: ['/none'] }));
      expect(isConflict(err)).toBe(true);
      expect(isNotFound(err)).toBe(false);
    } finally {
      await first.remove({ force: true });
    }
  });

  it('never treats other errors as not-found or conflict', () => {
    for (const err of [new Error('socket hang up'), { statusCode: 500 }, { code: 'ECONNREFUSED' }, null, undefined, '404']) {
      expect(isNotFound(err)).toBe(false);
      expect(isConflict(err)).toBe(false);
    }
  });

  it('is false when the engine cannot be reached at all', async () => {
    const err = await rejectionOf(createDockerClient({ DOCKER_HOST: 'unix:///nonexistent/docker.sock' }).ping());
    expect(isNotFound(err)).toBe(false);
  });
});

describe('ensureImagePresent', () => {
  it('resolves for a local image', async () => {
    await expect(ensureImagePresent(docker, image)).resolves.toBeUndefined();
  });

  it('names the missing image and how to build it, and does not pull', async () => {
    const missing = `switchyard/not-built-${suffix}:latest`;
    const err = await rejectionOf(ensureImagePresent(docker, missing));
    expect((err as Error).message).toBe(
      `Docker image "${missing}" is not present on this host; Switchyard never pulls images, ` + 'build it locally with `bash infra/images/build.sh`',
    );
    expect(isNotFound((err as Error).cause)).toBe(true);
    const images = await docker.listImages({ filters: { reference: [missing] } });
    expect(images).toEqual([]);
  });

  it('passes other failures through unchanged', async () => {
    const unreachable = createDockerClient({ DOCKER_HOST: 'unix:///nonexistent/docker.sock' });
    const err = await rejectionOf(ensureImagePresent(unreachable, image));
    expect((err as Error).message).not.toContain('build.sh');
  });
});
