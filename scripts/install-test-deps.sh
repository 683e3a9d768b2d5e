#!/usr/bin/env bash
# Installs the real components the tests run against (Debian packages), only those missing.
# Called by `npm test` (pretest) so a fresh machine needs nothing but Node and npm.
#
# --registry-only: called by `npm start` (prestart) for the one component the default configuration runs,
# the distribution registry of its managed backend (Debian's docker-registry). Where it cannot be installed
# (not root, no apt-get, apt fails) it only says so and lets the start go on: the gateway then refuses to
# start with the same advice if its configuration needs the registry, and runs fine if it does not
# (e.g. GATEWAY_SITES_0_BACKEND=http://… points it at a registry of your own).
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
  [haproxy]=haproxy
  [chromium]=chromium
)
extra=(uidmap)
what="test components"
soft=false
case "${1:-}" in
  --bench) NEEDED+=([nginx]=nginx [caddy]=caddy [wrk]=wrk) ;;
  --registry-only)
    NEEDED=([docker-registry]=docker-registry)
    extra=()
    what="the registry behind config/gateway.yaml's managed backend"
    soft=true
    ;;
esac

missing=()
for binary in "${!NEEDED[@]}"; do
  command -v "$binary" >/dev/null 2>&1 || missing+=("${NEEDED[$binary]}")
done
# The docker tests (test/helpers/docker.ts) run Debian's engine by path: dockerd → docker.io. Another
# docker earlier on PATH (e.g. /usr/local/bin/docker) does not count.
if [[ "${1:-}" != "--registry-only" && ! ( -x /usr/sbin/dockerd && -x /usr/bin/docker ) ]]; then
  missing+=(docker.io)
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

# --registry-only: a warning, not a failure (see above).
give_up() {
  echo "$1" >&2
  if $soft; then
    echo "the gateway will not start with a managed backend until it is installed" >&2
    exit 0
  fi
  exit 1
}

echo "installing $what: ${missing[*]}"
install_command="apt-get install -y --no-install-recommends ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  give_up "no apt-get here: install ${missing[*]} (the CNCF distribution registry for docker-registry) with your package manager"
fi
if [[ $(id -u) -ne 0 ]]; then
  give_up "not root: install them with: sudo $install_command"
fi
export DEBIAN_FRONTEND=noninteractive
# apt must not start a stock docker daemon (it would change iptables and net.ipv4.ip_forward): with a
# policy-rc.d that exits 101, invoke-rc.d and deb-systemd-invoke start no service. Left in place, so later
# upgrades do not start one either.
if [[ " ${missing[*]} " == *" docker.io "* && ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
fi
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" "${extra[@]}" >/dev/null; }; then
  give_up "installing ${missing[*]} failed (see apt's output above): run $install_command"
fi
