// The images infra/images/build.sh makes for the scale-to-zero tests and benchmarks; the same
// environment variables override the tags there and here.
export const HTTP_APP_IMAGE = process.env['HTTP_APP_IMAGE'] ?? 'switchyard/http-app:dev';
export const REDIS_IMAGE = process.env['REDIS_IMAGE'] ?? 'switchyard/redis:dev';
export const POSTGRES_IMAGE = process.env['POSTGRES_IMAGE'] ?? 'switchyard/postgres:dev';
/** A stock sshd: public-key login as `SSHD_USER`, the one key from the AUTHORIZED_KEY variable. */
export const SSHD_IMAGE = process.env['SSHD_IMAGE'] ?? 'switchyard/sshd:dev';
export const SSHD_USER = 'app';

/** The port each image's server listens on inside its container. */
export const HTTP_APP_PORT = 8080;
export const REDIS_PORT = 6379;
export const POSTGRES_PORT = 5432;
export const SSHD_PORT = 22;
