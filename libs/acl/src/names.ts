import { ACL_TAG, PROXY_USER_NAME } from '@switchyard/contracts';

// The names a policy uses, and how a source or destination alias is told apart. A proxy user
// name has no dash, dot or colon (PROXY_USER_NAME), and a host name must not be a possible
// proxy user name: so a plain word in `src` is never ambiguous between a user and a host.

export const GROUP = /^group:[a-z0-9][a-z0-9_.-]{0,62}$/;
export const TAG = ACL_TAG;
export const HOST = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
export const USER = PROXY_USER_NAME;

export const isUserName = (s: string): boolean => USER.test(s);
