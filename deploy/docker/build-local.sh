#!/usr/bin/env bash
# Builds the Conclave container image without a registry: compiles a static
# binary for the Docker engine's architecture, assembles a build context in a
# temp dir (the binary, this host's CA bundle, passwd and group, empty data
# and config dirs) and builds deploy/docker/Dockerfile.local from it.
#
#   deploy/docker/build-local.sh [TAG]      (default conclave:local)
#
# Environment:
#   CA_BUNDLE   CA certificates to put in the image
#               (default /etc/ssl/certs/ca-certificates.crt)
#   GIT_COMMIT  the commit to stamp into the binary (default: git rev-parse)
#   LABELS      extra "key=value" image labels, separated by spaces
set -euo pipefail

tag=${1:-conclave:local}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
commit=${GIT_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}

if [[ ! -s $ca_bundle ]]; then
  echo "build-local.sh: no CA bundle at $ca_bundle; install ca-certificates or set CA_BUNDLE" >&2
  exit 1
fi
arch=$(docker version --format '{{.Server.Arch}}') || {
  echo "build-local.sh: the Docker engine does not answer (docker version failed)" >&2
  exit 1
}

ctx=$(mktemp -d -t conclave-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT

mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/conclave/config"
echo "==> Building bin/conclave for linux/$arch ($commit)"
(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath \
  -ldflags "-s -w -X github.com/conclavehq/conclave/command.GitCommit=$commit" \
  -o "$ctx/rootfs/bin/conclave" .)
cp "$ca_bundle" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
cp "$here/passwd" "$here/group" "$ctx/rootfs/etc/"
cp "$here/Dockerfile.local" "$ctx/Dockerfile"
# COPY gives the files to root (or to the conclave user) but keeps their
# modes: make them readable by everyone whatever this user's umask is.
chmod -R a+rX "$ctx/rootfs" "$ctx/conclave"
mkdir -m 0700 "$ctx/conclave/data"
mkdir -m 1777 "$ctx/rootfs/tmp"

label_args=()
for l in ${LABELS:-}; do label_args+=(--label "$l"); done

echo "==> Building image $tag"
docker build --quiet --tag "$tag" "${label_args[@]}" "$ctx" >/dev/null
echo "==> Built $tag"
