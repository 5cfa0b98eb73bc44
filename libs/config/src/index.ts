import { bool, enumOf, int, port, string, url } from './fields.js';

export { loadConfig, loadConfigOrExit, ConfigError } from './load.js';
export type { ConfigIssue } from './load.js';
export { CommonEnv, cpus, DatabaseEnv, POOL_MAXIMA_DEFAULTS, PoolMaximaEnv } from './common.js';
export { isSecretVariable, redactUrl } from './redact.js';
export { isNetworkList, parseNetworks } from './networks.js';
export type { UrlOptions, IntOptions, StringOptions } from './fields.js';

/** Field builders for config schemas; each carries a description used in error messages. */
export const env = { url, port, int, bool, string, enumOf };
