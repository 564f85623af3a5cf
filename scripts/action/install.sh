#!/usr/bin/env bash
# Step 2 of action.yml: a wpkg on PATH: the given binary, the cached one, or
# `cargo install --locked --path` from the action's own source (cached afterwards).
set -euo pipefail
dest="$RUNNER_TEMP/wpkg-install"
if [ -n "${WPKG_BIN_INPUT:-}" ]; then
  [ -x "$WPKG_BIN_INPUT" ] || { echo "::error::wpkg-bin: $WPKG_BIN_INPUT is not an executable file"; exit 1; }
  mkdir -p "$dest/bin"
  cp "$WPKG_BIN_INPUT" "$dest/bin/wpkg"
elif [ "${CACHE_HIT:-}" = "true" ] && [ -x "$dest/bin/wpkg" ]; then
  echo "wpkg from the cache"
else
  command -v cargo >/dev/null || { echo "::error::cargo is needed to install wpkg (use a runner with Rust, or give wpkg-bin)"; exit 1; }
  cargo install --locked --path "$GITHUB_ACTION_PATH/cli" --root "$dest"
fi
# `wpkg build` runs the guest's build command, which needs the wasm targets.
if command -v rustup >/dev/null; then
  rustup target add wasm32-wasip2 wasm32-wasip1 >/dev/null
fi
echo "$dest/bin" >> "$GITHUB_PATH"
"$dest/bin/wpkg" --version
