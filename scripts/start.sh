#!/usr/bin/env bash
# `npm start`: everything from a fresh checkout to a running local stack in one command.
# OS packages (nats-server) when missing, node_modules when missing or older than the lock file,
# a build, then `ziggie up` with any arguments given (e.g. `npm start -- --no-demo`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian puts nats-server in /usr/sbin, which is not on every user's PATH.
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ] && [ ! -x /usr/bin/nats-server ]; then
  echo "start: nats-server is missing; installing it"
  if ! bash scripts/install-deps.sh nats-server; then
    echo "start: could not install nats-server. Install it with:" >&2
    echo "  sudo apt-get install -y nats-server" >&2
    exit 1
  fi
fi

bash scripts/prepare.sh
exec node cli/dist/main.js up "$@"
