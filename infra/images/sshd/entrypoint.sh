#!/bin/sh
# switchyard/sshd:dev's start: the authorized key from the environment (a public key, so an
# environment variable is fine), a host key of this container's own, then sshd in the
# foreground, logging to stderr.
set -eu
: "${AUTHORIZED_KEY:?set AUTHORIZED_KEY to the one public key that may log in as app}"
umask 022
printf '%s\n' "$AUTHORIZED_KEY" >/etc/ssh/authorized_keys
umask 077
# Kept across a restart of the container: a client that pinned it keeps trusting it.
[ -f /etc/ssh/ssh_host_ed25519_key ] \
  || /usr/bin/ssh-keygen -q -t ed25519 -N '' -C '' -f /etc/ssh/ssh_host_ed25519_key
# The public half, for a client to pin out of band (docker logs) before it connects.
printf 'host key: %s\n' "$(cat /etc/ssh/ssh_host_ed25519_key.pub)" >&2
exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
