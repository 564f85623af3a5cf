#!/usr/bin/env bash
# Step 3 of action.yml: wpkg build, and the remote reference to push to.
set -euo pipefail
[ -f "$INPUT_PATH/wpkg.toml" ] || { echo "::error::path: no wpkg.toml in $INPUT_PATH"; exit 1; }
remote="${INPUT_IMAGE:-}"
if [ -z "$remote" ]; then
  [ -n "${GITHUB_REPOSITORY:-}" ] && [ -n "${GITHUB_REF_NAME:-}" ] \
    || { echo "::error::image: give the reference to push to (e.g. ghcr.io/owner/app:1.0)"; exit 1; }
  remote="ghcr.io/${GITHUB_REPOSITORY,,}:${GITHUB_REF_NAME//\//-}"
fi
local_ref="wpkg-action/build:latest"
wpkg build "$INPUT_PATH" -t "$local_ref"
{
  echo "local=$local_ref"
  echo "remote=$remote"
} >> "$GITHUB_OUTPUT"
