// The data plane: the front ends a worker's listeners hand their clients to. Its parts live
// in dataplane/: handshake buffering (inbox), dialling a node with retry and splicing to it
// (upstream), the proxy ports' SOCKS5 / HTTP front end (proxy-front, absolute-form) and the
// app pools' plain TCP one (app-front).
export { acceptAppClient } from './dataplane/app-front.js';
export type { CredentialCheck, DataPlane, DataPlaneConfig } from './dataplane/plane.js';
export { acceptProxyClient } from './dataplane/proxy-front.js';
