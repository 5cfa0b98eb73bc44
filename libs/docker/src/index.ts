import Docker from 'dockerode';

export type { default as Docker } from 'dockerode';

const DEFAULT_SOCKET = '/var/run/docker.sock';

/**
 * The one place Docker clients are built: `DOCKER_HOST` (unix:///path or tcp://host:port)
 * when set, otherwise the local socket.
 */
export function createDockerClient(env: Record<string, string | undefined> = process.env): Docker {
  const dockerHost = env['DOCKER_HOST'];
  if (!dockerHost) return new Docker({ socketPath: DEFAULT_SOCKET });

  let url: URL;
  try {
    url = new URL(dockerHost);
  } catch {
    throw new Error(`DOCKER_HOST must look like unix:///var/run/docker.sock or tcp://host:2375, got "${dockerHost}"`);
  }
  switch (url.protocol) {
    case 'unix:':
      return new Docker({ socketPath: url.pathname || DEFAULT_SOCKET });
    case 'tcp:':
    case 'http:':
      if (!url.hostname) throw new Error(`DOCKER_HOST has no host: "${dockerHost}"`);
      return new Docker({ protocol: 'http', host: url.hostname, port: url.port || '2375' });
    default:
      throw new Error(`DOCKER_HOST scheme ${url.protocol}// is not supported (use unix:// or tcp://), got "${dockerHost}"`);
  }
}

/** Labels on every container and volume Switchyard manages; look containers up by these, never by name. */
export const Labels = {
  managed: 'io.switchyard.managed',
  tenant: 'io.switchyard.tenant',
  pool: 'io.switchyard.pool',
  node: 'io.switchyard.node',
  order: 'io.switchyard.order',
  kind: 'io.switchyard.kind',
} as const;

/** `listContainers({ filters: labelFilters({...}) })`: containers carrying all of these labels. */
export function labelFilters(labels: Record<string, string>): { label: string[] } {
  return { label: Object.entries(labels).map(([key, value]) => `${key}=${value}`) };
}

function statusCode(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { statusCode?: unknown }).statusCode : undefined;
}

/** The Docker API answered 404: the container, image, volume or network does not exist. */
export function isNotFound(err: unknown): boolean {
  return statusCode(err) === 404;
}

/** The Docker API answered 304: the container was already started, or already stopped. */
export function isAlreadyDone(err: unknown): boolean {
  return statusCode(err) === 304;
}

/** The Docker API answered 409: a name is taken, or the object is in the wrong state (e.g. removing a running container). */
export function isConflict(err: unknown): boolean {
  return statusCode(err) === 409;
}

/**
 * Checks that `image` exists on this engine. There is no registry to pull from, so a missing
 * image is a set-up error with one fix, and the message says which.
 */
export async function ensureImagePresent(docker: Docker, image: string): Promise<void> {
  try {
    await docker.getImage(image).inspect();
  } catch (err) {
    if (!isNotFound(err)) throw err;
    throw new Error(`Docker image "${image}" is not present on this host; Switchyard never pulls images, ` + 'build it locally with `bash infra/images/build.sh`', { cause: err });
  }
}
