#!/usr/bin/env bash
# Builds switchyard/exit-node:dev FROM scratch out of the host's node binary, its shared
# libraries and exit-node/server.mjs (no registry is reachable, so nothing is pulled).
# Skips the build when the image already carries the hash of its inputs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tag=${EXIT_NODE_IMAGE:-switchyard/exit-node:dev}
node_bin=$(readlink -f "$(command -v node)")

hash=$( { cat "$here/exit-node/server.mjs"; "$node_bin" --version; cat "$here/build.sh"; } \
  | sha256sum | cut -d' ' -f1)
current=$(docker image inspect -f '{{index .Config.Labels "io.switchyard.image-hash"}}' "$tag" \
  2>/dev/null || true)
if [ "$current" = "$hash" ]; then
  echo "$tag"
  exit 0
fi
old_id=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root/usr/local/bin" "$root/app" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$node_bin" "$root/usr/local/bin/node"
cp "$here/exit-node/server.mjs" "$root/app/server.mjs"
# "libX.so => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)"; vdso has no path.
ldd "$node_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' \
  | while read -r lib; do cp -L --parents "$lib" "$root/"; done

cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
EXPOSE 8888 8000
ENTRYPOINT ["/usr/local/bin/node", "/app/server.mjs"]
EOF

# The legacy builder is enough for FROM scratch and needs no buildx plugin.
if ! DOCKER_BUILDKIT=0 docker build -q --label "io.switchyard.image-hash=$hash" -t "$tag" "$ctx" \
    >"$ctx/build.log" 2>&1; then
  cat "$ctx/build.log" >&2
  echo "build.sh: docker build of $tag failed" >&2
  exit 1
fi
# Drop the image this one replaces, unless a container still uses it.
new_id=$(docker image inspect -f '{{.Id}}' "$tag")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
  docker image rm "$old_id" >/dev/null 2>&1 || true
fi
echo "$tag"
