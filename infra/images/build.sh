#!/usr/bin/env bash
# Builds the locally made images FROM scratch out of the host's binaries and their shared
# libraries (no registry is reachable, so nothing is pulled):
#   switchyard/exit-node:dev  node + exit-node/server.mjs (a gluetun stand-in)
#   switchyard/http-app:dev   node + http-app/server.mjs (an HTTP app for scale to zero)
#   switchyard/redis:dev      the host's redis-server, persisting to /data (AOF and RDB)
#   switchyard/postgres:dev   the host's PostgreSQL 15, its data directory initialised here
#   switchyard/sshd:dev       the host's sshd (openssh-server), public-key login as one account
# `build.sh [exit-node|http-app|redis|postgres|sshd ...]` builds only those (default: all).
# An image is skipped when it already carries the hash of its inputs; each tag is printed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node_bin=$(readlink -f "$(command -v node)")
pg_dir=/usr/lib/postgresql/15

# Copies files to the same paths under a root, with every shared library ldd names for them.
copy_with_libs() {
  local root=$1
  shift
  for f in "$@"; do cp -L --parents "$f" "$root/"; done
  # "libX.so => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)"; vdso has no path.
  for f in "$@"; do { ldd "$f" 2>/dev/null || true; }; done \
    | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u \
    | while read -r lib; do cp -L --parents "$lib" "$root/"; done
}

# Prints the tag and succeeds when the image already carries this hash.
up_to_date() {
  local current
  current=$(docker image inspect -f '{{index .Config.Labels "io.switchyard.image-hash"}}' "$1" \
    2>/dev/null || true)
  [ "$current" = "$2" ] && echo "$1"
}

# Builds <ctx>/Dockerfile (rootfs and the rest inside ctx) as <tag>, labelled with <hash>.
build_image() {
  local tag=$1 hash=$2 ctx=$3 old_id new_id
  old_id=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
  # The legacy builder is enough for FROM scratch and needs no buildx plugin.
  if ! DOCKER_BUILDKIT=0 docker build -q --label "io.switchyard.image-hash=$hash" -t "$tag" "$ctx" \
      >"$ctx/build.log" 2>&1; then
    cat "$ctx/build.log" >&2
    echo "build.sh: docker build of $tag failed" >&2
    return 1
  fi
  # Drop the image this one replaces, unless a container still uses it.
  new_id=$(docker image inspect -f '{{.Id}}' "$tag")
  if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
  fi
  echo "$tag"
}

# A context directory removed when the script exits, whatever happens.
contexts=()
trap 'for c in "${contexts[@]}"; do rm -rf "$c"; done' EXIT
new_context() {
  local ctx
  ctx=$(mktemp -d)
  contexts+=("$ctx")
  mkdir -p "$ctx/rootfs/tmp"
  chmod 1777 "$ctx/rootfs/tmp"
  echo "$ctx"
}

# node + one server.mjs: exit-node and http-app differ only in the script and the ports.
build_node_image() {
  local tag=$1 script=$2 ports=$3 hash ctx
  hash=$( { cat "$script"; "$node_bin" --version; cat "$here/build.sh"; } | sha256sum | cut -d' ' -f1)
  up_to_date "$tag" "$hash" && return 0
  ctx=$(new_context)
  mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/app"
  copy_with_libs "$ctx/rootfs" "$node_bin"
  mv "$ctx/rootfs$node_bin" "$ctx/rootfs/usr/local/bin/node"
  cp "$script" "$ctx/rootfs/app/server.mjs"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
EXPOSE $ports
ENTRYPOINT ["/usr/local/bin/node", "/app/server.mjs"]
DOCKERFILE
  build_image "$tag" "$hash" "$ctx"
}

build_exit_node() {
  build_node_image "${EXIT_NODE_IMAGE:-switchyard/exit-node:dev}" "$here/exit-node/server.mjs" "8888 8000"
}

build_http_app() {
  build_node_image "${HTTP_APP_IMAGE:-switchyard/http-app:dev}" "$here/http-app/server.mjs" "8080"
}

build_redis() {
  local tag=${REDIS_IMAGE:-switchyard/redis:dev} bin hash ctx
  bin=$(readlink -f /usr/bin/redis-server)
  hash=$( { sha256sum "$bin"; cat "$here/build.sh"; } | sha256sum | cut -d' ' -f1)
  up_to_date "$tag" "$hash" && return 0
  ctx=$(new_context)
  copy_with_libs "$ctx/rootfs" "$bin"
  # redis-server is a link to redis-check-rdb on Debian; the binary picks its role by its name.
  mv "$ctx/rootfs$bin" "$ctx/rootfs/usr/bin/redis-server"
  mkdir -p "$ctx/rootfs/data"
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
EXPOSE 6379
WORKDIR /data
# Persists as the official image does: the append-only file (fsync every second) and the
# default RDB snapshots, in /data. A stop (a node put to sleep) keeps them in the container;
# a pool that wants them past the container mounts a volume at /data. No VOLUME here: an
# anonymous volume would outlive every removed node.
ENTRYPOINT ["/usr/bin/redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data", "--appendonly", "yes", "--appendfsync", "everysec"]
DOCKERFILE
  build_image "$tag" "$hash" "$ctx"
}

build_postgres() {
  local tag=${POSTGRES_IMAGE:-switchyard/postgres:dev} hash ctx uid gid files
  [ -x "$pg_dir/bin/postgres" ] || { echo "build.sh: $pg_dir/bin/postgres is missing" >&2; return 1; }
  uid=$(id -u postgres) && gid=$(id -g postgres) \
    || { echo "build.sh: the host has no postgres user to run initdb as" >&2; return 1; }
  hash=$( { "$pg_dir/bin/postgres" --version; sha256sum "$pg_dir/bin/postgres"; cat "$here/build.sh"; } \
    | sha256sum | cut -d' ' -f1)
  up_to_date "$tag" "$hash" && return 0
  ctx=$(new_context)
  # Every binary and module of the server, except the JIT (it would pull in all of LLVM; jit=off).
  mapfile -t files < <(find "$pg_dir" -type f \( -path "$pg_dir/bin/*" -o -name '*.so' \) \
    ! -name llvmjit.so | sort)
  copy_with_libs "$ctx/rootfs" "${files[@]}"
  cp -rL --parents /usr/share/postgresql/15 /usr/share/zoneinfo/UTC /usr/share/zoneinfo/Etc/UTC "$ctx/rootfs/"
  mkdir -p "$ctx/rootfs/etc"
  printf 'root:x:0:0:root:/root:/bin/false\npostgres:x:%s:%s:PostgreSQL:/var/lib/postgresql:/bin/false\n' \
    "$uid" "$gid" >"$ctx/rootfs/etc/passwd"
  printf 'root:x:0:\npostgres:x:%s:\n' "$gid" >"$ctx/rootfs/etc/group"

  # initdb refuses to run as root; the postgres user needs a path it may enter.
  mkdir -m 755 "$ctx/pg"
  chown "$uid:$gid" "$ctx/pg"
  chmod 755 "$ctx"
  runuser -u postgres -- "$pg_dir/bin/initdb" -D "$ctx/pg/data" -U postgres --auth=trust \
    --locale=C --encoding=UTF8 --no-sync >"$ctx/initdb.log" 2>&1 \
    || { cat "$ctx/initdb.log" >&2; echo "build.sh: initdb failed" >&2; return 1; }
  echo 'host all all 0.0.0.0/0 trust' >>"$ctx/pg/data/pg_hba.conf"
  cat >>"$ctx/pg/data/postgresql.conf" <<'CONF'
# switchyard/postgres:dev: reachable through Docker's port publishing, socket in /tmp, no JIT.
listen_addresses = '*'
unix_socket_directories = '/tmp'
jit = off
timezone = 'UTC'
log_timezone = 'UTC'
CONF
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
COPY --chown=$uid:$gid pg/ /var/lib/postgresql/
USER $uid:$gid
EXPOSE 5432
# SIGINT is PostgreSQL's fast shutdown: sessions are ended instead of waited for.
STOPSIGNAL SIGINT
# PostgreSQL accepts TCP a moment before it accepts sessions ("the database system is starting
# up"); its own check tells when it is ready, and the socket activator waits for it.
HEALTHCHECK --interval=200ms --timeout=2s --retries=1 CMD ["$pg_dir/bin/pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]
ENTRYPOINT ["$pg_dir/bin/postgres", "-D", "/var/lib/postgresql/data"]
DOCKERFILE
  build_image "$tag" "$hash" "$ctx"
}

build_sshd() {
  local tag=${SSHD_IMAGE:-switchyard/sshd:dev} sh hash ctx bins
  sh=$(readlink -f /bin/sh)
  # sshd, ssh-keygen for the host key at start, a shell and cat for the commands a client runs.
  bins=(/usr/sbin/sshd /usr/bin/ssh-keygen "$sh" /usr/bin/cat)
  hash=$( { sha256sum "${bins[@]}"; cat "$here/sshd/sshd_config" "$here/sshd/entrypoint.sh" "$here/build.sh"; } \
    | sha256sum | cut -d' ' -f1)
  up_to_date "$tag" "$hash" && return 0
  ctx=$(new_context)
  copy_with_libs "$ctx/rootfs" "${bins[@]}"
  [ "$sh" = /bin/sh ] || { mkdir -p "$ctx/rootfs/bin"; ln -s "$sh" "$ctx/rootfs/bin/sh"; }
  mkdir -p "$ctx/rootfs/etc/ssh" "$ctx/rootfs/home/app"
  # sshd's privilege separation needs its own account and an empty root-owned directory to chroot to.
  mkdir -m 755 -p "$ctx/rootfs/run/sshd"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\napp:x:1000:1000:app:/home/app:/bin/sh\n' \
    >"$ctx/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\napp:x:1000:\n' >"$ctx/rootfs/etc/group"
  cp "$here/sshd/sshd_config" "$ctx/rootfs/etc/ssh/sshd_config"
  cp "$here/sshd/entrypoint.sh" "$ctx/rootfs/entrypoint.sh"
  chmod 644 "$ctx/rootfs/etc/ssh/sshd_config"
  chmod 755 "$ctx/rootfs/entrypoint.sh"
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
COPY --chown=1000:1000 rootfs/home/app/ /home/app/
EXPOSE 22
ENTRYPOINT ["/entrypoint.sh"]
DOCKERFILE
  build_image "$tag" "$hash" "$ctx"
}

images=("$@")
[ ${#images[@]} -gt 0 ] || images=(exit-node http-app redis postgres sshd)
for image in "${images[@]}"; do
  case $image in
    exit-node) build_exit_node ;;
    http-app) build_http_app ;;
    redis) build_redis ;;
    postgres) build_postgres ;;
    sshd) build_sshd ;;
    *) echo "build.sh: unknown image $image (exit-node, http-app, redis, postgres, sshd)" >&2; exit 2 ;;
  esac
done
