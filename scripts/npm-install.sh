#!/usr/bin/env bash
# Installs node_modules exactly from package-lock.json. `npm ci` is the first choice; a registry
# mirror that does not serve every platform's optional native packages (e.g. @swc/core for
# macOS) leaves them out of the lock file, which `npm ci` then refuses: fall back to
# `npm install --no-save`, which installs the same locked versions without rewriting the lock.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! npm ci --no-audit --no-fund; then
  echo "npm-install: npm ci refused the lock file; installing the locked versions with npm install --no-save" >&2
  npm install --no-audit --no-fund --no-save
fi
