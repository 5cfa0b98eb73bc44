#!/usr/bin/env bash
# The edge sshd's two accounts (libs/tunnels/src/ssh/edge.ts), created when missing (as root):
#   switchyard-tunnel  the one account SSH tunnels log in as; no shell (`ssh -N` opens none)
#   switchyard-keys    the AuthorizedKeysCommandUser: runs the key command and nothing else
# infra/setup.sh runs this, and so do the tunnel tests. Idempotent.
set -euo pipefail

for user in switchyard-tunnel switchyard-keys; do
  if ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --shell /usr/sbin/nologin --no-create-home --home-dir /nonexistent "$user"
  fi
done
# useradd leaves the password field `!` (locked); sshd without PAM refuses a locked account even
# for a key login ("account is locked"). `*` matches no password and is not a lock.
# Changed only when locked: tests start this script often, and usermod takes /etc/passwd's lock.
if [[ "$(getent shadow switchyard-tunnel | cut -d: -f2)" == '!'* ]]; then
  usermod -p '*' switchyard-tunnel
fi
