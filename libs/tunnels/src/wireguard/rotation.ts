import type { WireGuardPeer } from './config.js';
import { createKeyFile, type KeyFile, removeKeyFile } from './keys.js';
import type { WireGuardLink } from './link.js';
import { pollUntil } from '../poll.js';

// Rotating the node side's key with overlap. A WireGuard interface holds one private key, and
// changing it ends its sessions for sending; what keeps an open TCP connection alive is doing
// the steps in the order that leaves the shortest gap:
//   1. the node makes a new key pair (the private half never leaves its host);
//   2. the edge accepts the new public key as an extra peer with no allowed IPs: handshakes
//      with it succeed, while the old key still carries all traffic;
//   3. the node switches to the new key and handshakes at once (link.usePrivateKey); its old
//      session still decrypts what the edge sends, so edge → node keeps flowing;
//   4. once the edge has seen the handshake, it moves the allowed IPs to the new key and drops
//      the old one in one `wg set` (link.replacePeer): the old key is refused from then on.
// Only node → edge packets between 3 and 4 are lost (a handshake round trip and a poll); TCP
// retransmits them. Steps 1 and 3 run on the node's host, 2 and 4 on the edge's: tunnel-manager
// on two hosts runs the same steps apart; this function is them in one process.

export interface NodeKeyRotation {
  /** The node host's end of the link; its key is the one replaced. */
  node: WireGuardLink;
  /** The edge's end of the link. */
  edge: WireGuardLink;
  /** The edge's peer entry for the node as it stands (public key = the node's current key). */
  edgePeer: WireGuardPeer;
  /** How long to wait for the handshake with the new key before moving traffic anyway; 5 s unless given. */
  handshakeTimeoutMs?: number;
}

export interface NodeKeyRotated {
  /** The node's new key. */
  key: KeyFile;
  /** The edge's peer entry for the node now. */
  edgePeer: WireGuardPeer;
  /**
   * Whether the edge saw a handshake with the new key before traffic moved to it. False means
   * the link is on the new key but was not shown to work; the caller's probes will tell.
   */
  handshakeSeen: boolean;
}

const HANDSHAKE_TIMEOUT_MS = 5_000;
const HANDSHAKE_POLL_MS = 25;

export async function rotateNodeKey(r: NodeKeyRotation): Promise<NodeKeyRotated> {
  const { node, edge } = r;
  // A stale entry would leave the edge with the node's current key as a second peer and the
  // stale one replaced: refuse before anything changes.
  if (r.edgePeer.publicKey !== node.key.publicKey) throw new Error(`the edge's peer entry (${r.edgePeer.publicKey}) is not the node's current key (${node.key.publicKey})`);
  const key = await createKeyFile(node.config.stateDir, node.name, node.host);
  try {
    await edge.acceptPeerKey(key.publicKey, r.edgePeer.endpoint);
  } catch (err) {
    // Nothing changed on the node yet: the new key is simply never used.
    await removeKeyFile(key);
    throw err;
  }
  // From here on there is no going back: the node holds the new key, so the edge must follow.
  const previous = await node.usePrivateKey(key);
  const seen = await waitForHandshake(edge, key.publicKey, r.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
  const edgePeer = { ...r.edgePeer, publicKey: key.publicKey };
  try {
    await edge.replacePeer(r.edgePeer.publicKey, edgePeer);
  } catch (err) {
    // The edge still routes to the old key: the node goes back to it, and the link carries on
    // as before the rotation, which the caller may try again.
    try {
      await node.usePrivateKey(previous);
    } catch (back) {
      throw new Error(
        `the edge refused the node's new key (${messageOf(err)}) and the node could not go back to its previous key (${messageOf(back)}): the node is on ${key.publicKey}, the edge routes to ${r.edgePeer.publicKey}`,
      );
    }
    await edge.removePeer(key.publicKey).catch(() => undefined);
    await removeKeyFile(key).catch(() => undefined);
    throw new Error(`the edge refused the node's new key, so the node is back on its previous one: ${messageOf(err)}`);
  }
  await removeKeyFile(previous);
  return { key, edgePeer, handshakeSeen: seen };
}

/** Whether a handshake with the peer keyed `publicKey` completes within `timeoutMs`. */
export async function waitForHandshake(link: WireGuardLink, publicKey: string, timeoutMs: number): Promise<boolean> {
  const { met } = await pollUntil(
    () => link.peer(publicKey),
    (p) => p?.latestHandshakeAt != null,
    timeoutMs,
    HANDSHAKE_POLL_MS,
  );
  return met;
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));
