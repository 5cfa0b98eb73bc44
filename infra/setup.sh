#!/usr/bin/env bash
# Finds or installs, and starts, what Switchyard needs on a Debian-like machine (as root):
# NATS with JetStream, PostgreSQL, Redis and a Docker engine, all on 127.0.0.1.
# Idempotent: anything already answering is left alone.
set -euo pipefail

WAIT_SECS=${SETUP_WAIT_SECS:-60}

# start.sh and test.sh may run at once; one set-up at a time, so dockerd is started once.
exec 9>/tmp/switchyard-setup.lock
flock -w 300 9 || { echo "setup: waited 300 s for another infra/setup.sh to finish" >&2; exit 1; }

apt_updated=no
apt_install() {
  if [ "$apt_updated" = no ]; then
    apt-get update -qq
    apt_updated=yes
  fi
  # needrestart must not restart services that are already running.
  DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes NEEDRESTART_SUSPEND=1 \
    apt-get install -y -qq "$@" >/dev/null
}

# wait_for NAME LOG CMD...: polls CMD until it succeeds, for at most WAIT_SECS.
wait_for() {
  local name=$1 log=$2; shift 2
  local deadline=$((SECONDS + WAIT_SECS))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "setup: $name did not become ready within ${WAIT_SECS}s (see $log)" >&2
      exit 1
    fi
    sleep 0.5
  done
}

# ensure NAME PACKAGE BINARY LOG READY_FN START_FN
ensure() {
  local name=$1 pkg=$2 bin=$3 log=$4 ready=$5 start=$6 how="started"
  if "$ready" >/dev/null 2>&1; then
    echo "$name: running (already)"
    return
  fi
  if [ ! -x "$bin" ]; then
    apt_install "$pkg"
    how="installed and started"
  fi
  "$start" 9>&-   # daemons must not inherit the lock
  wait_for "$name" "$log" "$ready"
  echo "$name: $how"
}

# --- NATS ---------------------------------------------------------------------------------
nats_ready() {
  # The server's INFO line says whether JetStream is on.
  timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222 && read -r line <&3 && [[ $line == *"\"jetstream\":true"* ]]'
}
nats_start() {
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
}
ensure nats nats-server /usr/sbin/nats-server /var/log/nats-server.log nats_ready nats_start

# --- PostgreSQL ---------------------------------------------------------------------------
pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432; }
pg_start() {
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
}
ensure postgres postgresql /usr/bin/pg_ctlcluster "/var/log/postgresql/" pg_ready pg_start

# Role and databases, over the local socket as the postgres superuser.
(cd / && su postgres -c "psql -q -v ON_ERROR_STOP=1 -d postgres" >/dev/null) <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'switchyard') THEN
    CREATE ROLE switchyard LOGIN CREATEDB PASSWORD 'switchyard';
  END IF;
END $$;
-- The admin role creates each service's role (infra/start.sh, and the tests for each database
-- of their own) and hands the tables it made before the roles over to them.
ALTER ROLE switchyard CREATEROLE;
SELECT format('CREATE DATABASE %I OWNER switchyard', d)
  FROM unnest(ARRAY['switchyard', 'switchyard_test']) AS d
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d)
\gexec
SQL
psql -qAt postgres://switchyard:switchyard@127.0.0.1:5432/switchyard -c 'select 1' >/dev/null \
  || { echo "setup: cannot log in as switchyard at 127.0.0.1:5432" >&2; exit 1; }
echo "postgres: role and databases switchyard, switchyard_test ready"

# --- Redis --------------------------------------------------------------------------------
redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }
redis_start() {
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
}
ensure redis redis-server /usr/bin/redis-server /var/log/redis/ci.log redis_ready redis_start

# --- Docker -------------------------------------------------------------------------------
docker_ready() { docker info; }
docker_start() {
  # No systemd: run dockerd in its own session so it outlives this script and its callers.
  setsid -f dockerd >>/var/log/dockerd.log 2>&1 </dev/null
}
ensure docker docker.io /usr/sbin/dockerd /var/log/dockerd.log docker_ready docker_start

# ensure_command COMMAND PACKAGE: installs PACKAGE when COMMAND is not on the PATH.
ensure_command() {
  if command -v "$1" >/dev/null; then
    echo "$1: present (already)"
  else
    apt_install "$2"
    echo "$1: installed"
  fi
}
ensure_command docker-compose docker-compose
# The socket activator's nftables mode drives its redirect set with the nft CLI.
ensure_command nft nftables
# The tests drive real servers with their own clients.
ensure_command curl curl
ensure_command redis-cli redis-tools
ensure_command psql postgresql-client
# Storage sync drives rclone (its rc API, `rclone rcd`); Switchyard copies no file itself.
ensure_command rclone rclone
# Tunnels: WireGuard in userspace (the kernel module is used where present) and a stock sshd
# that tunnel-manager runs with its own config on the edge. Debian's openssh-server would start
# an sshd on port 22 as it installs; policy-rc.d keeps it from starting anything.
if ! command -v wireguard-go >/dev/null || ! command -v wg >/dev/null || [ ! -x /usr/sbin/sshd ]; then
  policy=/usr/sbin/policy-rc.d
  had_policy=no; [ -e "$policy" ] && had_policy=yes
  if [ "$had_policy" = no ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"
    # Removed however the install ends: left behind, it would block every later service start.
    trap 'rm -f "$policy"' EXIT
  fi
  apt_install wireguard-go wireguard-tools openssh-server
  [ "$had_policy" = yes ] || { rm -f "$policy"; trap - EXIT; }
  # On a host with systemd the package enables a stock sshd on port 22 for the next boot;
  # Switchyard runs its own sshd, so that one stays off.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
  fi
  echo "wireguard-go, wg, sshd: installed"
else
  echo "wireguard-go, wg, sshd: present (already)"
fi
# sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd
# The accounts the edge sshd's tunnels log in as and its key command runs as.
bash "$(dirname "${BASH_SOURCE[0]}")/tunnel-users.sh"
echo "tunnel accounts: switchyard-tunnel, switchyard-keys ready"
