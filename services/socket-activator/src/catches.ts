/** One port of a node as the activator knows it. */
export interface CatchPort {
  name: string;
  containerPort: number;
  /** The node's own published port on 127.0.0.1: caught while armed (nftables), forwarded to. */
  hostPort: number;
  /** Proxy mode: the activator's port for it; null in nftables mode or before it is bound. */
  publicPort: number | null;
}

/** What is stored of a node: its ports, whether its catch is armed, and how a wake probes. */
export interface NodeCatch {
  tenantId: string;
  poolId: string;
  nodeId: string;
  ports: CatchPort[];
  armed: boolean;
  armedAt: Date | null;
  probeIntervalMs: number;
  probeTimeoutMs: number;
}

/** The rows of activator_catches, behind what the core needs of them. */
export interface CatchStore {
  load(): Promise<NodeCatch[]>;
  /** Replaces every row of the node with what `c` says. */
  save(c: NodeCatch): Promise<void>;
  forget(tenantId: string, nodeId: string): Promise<void>;
}

/**
 * The nftables redirect set (nftables mode), or nothing at all (proxy mode). `ports()` is
 * what the set holds now, as this process last wrote it.
 */
export interface Redirects {
  add(ports: readonly number[]): Promise<void>;
  remove(ports: readonly number[]): Promise<void>;
  /** Makes the set hold exactly these ports, in one atomic step. */
  replace(ports: readonly number[]): Promise<void>;
  ports(): number[];
}

export const noRedirects: Redirects = {
  add: async () => {},
  remove: async () => {},
  replace: async () => {},
  ports: () => [],
};
