import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BackoffPolicy, DEFAULT_BACKOFF, generateClientKey, recordProcess, removeClientKey, ReverseTunnel, type SpliceServer, startSpliceServer } from '@switchyard/tunnels';
import type { EdgeSshAddress, NodeSide, SessionHandle, SessionKey, SessionRoute, SshPathDeps } from './ssh-paths.js';

/**
 * The private halves in files under this host's state directory, and each session a supervised
 * `ssh -R` run here: single-host mode's node side, and what a node host's agent runs.
 */
export class LocalNodeSide implements NodeSide {
  private readonly backoff: BackoffPolicy;

  constructor(
    private readonly stateDir: string,
    settings: { sshRetryMs: number },
    private readonly log: SshPathDeps['log'],
  ) {
    this.backoff = { ...DEFAULT_BACKOFF, initialMs: settings.sshRetryMs };
  }

  async createKey(keyId: string): Promise<string> {
    return (await generateClientKey(join(this.stateDir, 'keys'), keyId)).publicKey;
  }

  discardKey(keyId: string): Promise<void> {
    return removeClientKey({ privateKeyPath: this.keyPath(keyId) });
  }

  holdsKey(keyId: string): Promise<boolean> {
    return access(this.keyPath(keyId)).then(
      () => true,
      () => false,
    );
  }

  /**
   * A node's session forwards straight to its port. A pool's forwards to a splicer here on
   * loopback, which picks one of the pool's nodes per connection and takes new ones as they come.
   */
  async startSession(key: SessionKey, route: SessionRoute, edge: EdgeSshAddress, tunnelId: string): Promise<SessionHandle> {
    const target = route.balanced ? undefined : route.targets[0];
    if (!route.balanced && !target) throw new Error('a session needs the node to forward to');
    const knownHosts = join(this.stateDir, 'edge.known_hosts');
    await writeFile(knownHosts, `${edge.knownHostsLine.trimEnd()}\n`, { mode: 0o644 });
    // Started last, so nothing before it can fail and leave it listening.
    const splicer = route.balanced ? await startSpliceServer({ host: '127.0.0.1', port: 0, targets: route.targets }) : undefined;
    const forward = splicer ? { host: splicer.host, port: splicer.port } : target!;
    const session = new ReverseTunnel({
      edgeHost: edge.host,
      edgePort: edge.port,
      user: edge.user,
      identityPath: this.keyPath(key.key_id),
      knownHostsPath: knownHosts,
      forward: { remotePort: key.listen_port, targetHost: forward.host, targetPort: forward.port },
      serverAliveIntervalSec: 5,
      serverAliveCountMax: 3,
      backoff: this.backoff,
      onState: (s) => {
        if (s.pid)
          void recordProcess(this.stateDir, key.key_id, s.pid).catch((err: Error) =>
            this.log.warn({ tunnelId, err: err.message }, 'could not note the ssh client for the next start'),
          );
      },
    });
    session.start();
    return splicer ? withSplicer(session, splicer) : session;
  }

  private keyPath(keyId: string): string {
    return join(this.stateDir, 'keys', keyId);
  }
}

/** A pool's session: the ssh client and the splicer it forwards to, ended together. */
function withSplicer(session: ReverseTunnel, splicer: SpliceServer): SessionHandle {
  return {
    waitFor: (status, timeoutMs) => session.waitFor(status, timeoutMs),
    async stop() {
      await session.stop();
      await splicer.close();
    },
    async retire(drained, deadline) {
      await session.retire(drained, deadline);
      await splicer.close();
    },
    setTargets: (targets) => splicer.setTargets(targets),
  };
}
