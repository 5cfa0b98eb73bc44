/** Finds peers that vanished without a FIN (host gone, NAT entry dropped) on idle connections. */
export const KEEPALIVE_MS = 30_000;

export const noop = (): void => undefined;
