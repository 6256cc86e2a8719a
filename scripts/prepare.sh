#!/usr/bin/env bash
# Gets a checkout ready to run: the OS packages named as arguments when missing, node_modules
# when missing or older than the lock file, and a build. Used by `npm start` and `npm test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$#" -gt 0 ]; then
  bash scripts/install-deps.sh "$@"
fi

# npm ci writes node_modules/.package-lock.json; a newer package-lock.json means dependencies changed.
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "prepare: installing node dependencies (npm ci)"
  bash scripts/npm-install.sh
fi

npm run build --silent
