#!/usr/bin/env bash
# Step 1 of action.yml: the cache key of the wpkg binary, from the action's own sources.
set -euo pipefail
if [ -n "${WPKG_BIN_INPUT:-}" ]; then
  echo "key=wpkg-prebuilt" >> "$GITHUB_OUTPUT"
  exit 0
fi
cd "$GITHUB_ACTION_PATH"
sum=$(find . -path ./target -prune -o \( -name '*.rs' -o -name 'Cargo.toml' -o -name 'Cargo.lock' -o -name '*.json' \) -type f -print \
  | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-32)
echo "key=wpkg-${RUNNER_OS:-Linux}-$(uname -m)-$sum" >> "$GITHUB_OUTPUT"
