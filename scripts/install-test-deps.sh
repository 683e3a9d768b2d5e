#!/usr/bin/env bash
# Installs the real components the tests run against (Debian packages), only those missing.
# Called by `npm test` (pretest) so a fresh machine needs nothing but Node and npm.
set -euo pipefail

# binary → Debian package
declare -A NEEDED=(
  [docker-registry]=docker-registry
  [redis-server]=redis-server
  [pebble]=pebble
  [pebble-challtestsrv]=pebble
  [skopeo]=skopeo
  [podman]=podman
  [htpasswd]=apache2-utils
  [openssl]=openssl
  [curl]=curl
  [unshare]=util-linux
  [ss]=iproute2
  [promtool]=prometheus
  [prometheus]=prometheus
)
if [[ "${1:-}" == "--bench" ]]; then
  NEEDED+=([nginx]=nginx [caddy]=caddy [wrk]=wrk)
fi

missing=()
for binary in "${!NEEDED[@]}"; do
  command -v "$binary" >/dev/null 2>&1 || missing+=("${NEEDED[$binary]}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing test components: ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "not root: install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" uidmap >/dev/null
