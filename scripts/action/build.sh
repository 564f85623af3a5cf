#!/usr/bin/env bash
# Step `build` of action.yml: wpkg build of INPUT_PATH into the local store as
# wpkg-action/build:latest (pushed by the next step to the reference `check` chose).
set -euo pipefail
# `wpkg build` runs the guest's build command, which needs the wasm targets of the
# workflow's own toolchain (this runs in the workspace: its rust-toolchain.toml applies).
if command -v rustup >/dev/null; then
  (cd "$INPUT_PATH" && rustup target add wasm32-wasip2 wasm32-wasip1 >/dev/null)
fi
local_ref="wpkg-action/build:latest"
wpkg build "$INPUT_PATH" -t "$local_ref"
echo "local=$local_ref" >> "$GITHUB_OUTPUT"
