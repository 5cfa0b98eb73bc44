import { isIP } from 'node:net';
import Type from 'typebox';
import { CommonEnv, DatabaseEnv, env } from '@switchyard/config';

// An IP literal, not a host name: Docker binds published ports to HostIp as given, and a
// name would fail only at the first container start, far from the variable that caused it.
const ipAddress = (defaultValue: string) =>
  Type.Refine(
    Type.String({ description: 'an IP address such as 127.0.0.1', default: defaultValue }),
    (value: string) => isIP(value) !== 0,
    () => 'expected an IP address such as 127.0.0.1',
  );

export const ExitNodeManagerEnv = Type.Object({
  ...CommonEnv,
  ...DatabaseEnv,
  /** Image of exit pools whose spec names none; it must already be on the Docker host (never pulled). */
  EXIT_NODE_IMAGE: env.string({ minLength: 1, default: 'switchyard/exit-node:dev' }),
  /** The only host address node ports are published on; every client reaches nodes through it. */
  NODE_PUBLISH_HOST: ipAddress('127.0.0.1'),
  /** unix:///path or tcp://host:port; the local socket when unset. */
  DOCKER_HOST: Type.Optional(env.string({ minLength: 1 })),
});
export type ExitNodeManagerConfig = Type.Static<typeof ExitNodeManagerEnv>;
