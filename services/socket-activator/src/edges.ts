import type { Socket } from 'node:net';
import type { ActivatorMode, Payload } from '@switchyard/contracts';
import type { CatchPort, CatchStore, NodeCatch, Redirects } from './catches.js';
import type { ActivatorMetrics } from './metrics.js';

export type Log = { [K in 'debug' | 'info' | 'warn']: (obj: object, msg: string) => void };

/** How a connection is handed to the node, and what the wake hears of it. */
export interface Handover {
  onFirstByte(): void;
  /** The node may still turn the connection away this long (it just woke): dial again meanwhile. */
  redial?: { forMs: number; everyMs: number };
  /** The node turned the connection away (refused it, or closed it before a byte) and no dial is left. */
  onTurnedAway?(): void;
}

/** The edges of the core: NATS, the probe, sockets, the set and the rows. Fakes in tests. */
export interface ActivatorEdges {
  mode: ActivatorMode;
  listenPort: number;
  /** The address nodes publish their ports on; the only one caught, probed and dialled. */
  nodeHost: string;
  store: CatchStore;
  redirects: Redirects;
  /** Publishes node.cmd.wake for the node with this order id. */
  requestWake(c: NodeCatch, orderId: string): Promise<void>;
  /** One probe attempt of the node's port. */
  probe(hostPort: number): Promise<boolean>;
  /** Connects a (paused) client to the node's port and pipes both ways. */
  forward(socket: Socket, hostPort: number, handover: Handover): void;
  /** Ends a client cleanly (FIN, never RST). */
  release(socket: Socket): void;
  woke(e: Payload<'activator.evt.woke'>): Promise<void>;
  failed(e: Payload<'activator.evt.failed'>): Promise<void>;
  /** Proxy mode: binds the activator's public port for a node port (its stored one, or any); resolves with it. */
  listen?(c: NodeCatch, port: CatchPort): Promise<number>;
  /** Proxy mode: closes the node's public ports. */
  unlisten?(nodeId: string): void;
  /**
   * The tenant's ACL policy on a connection for a node's port (`port`: the port the client
   * dialled: the node's host port, caught, or the activator's public port): `allowed`, or why
   * not. Asked before anything is held, woken or forwarded; without it every connection passes.
   */
  admit?(c: NodeCatch, client: string | undefined, port: number): 'allowed' | 'denied' | 'unknown';
  metrics: ActivatorMetrics;
  log: Log;
  now?: () => number;
  /** A woke event waits this long for the node's first byte before it goes without firstByteMs. */
  firstByteWaitMs?: number;
  /** The ports leave the set once the node answered a held connection, or after this long. */
  disarmWaitMs?: number;
}

export const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
