#!/usr/bin/env bash
# Step `source` of action.yml: wpkg built from the action's own source, when there is
# no release to download (the action pinned to a branch, a major tag or a commit; or
# install: source). The restore step before it may have brought the binary back from
# the cache (key: runner OS, arch, image, and a hash of the source); otherwise
#   cargo install --locked --path cli
# runs in $GITHUB_ACTION_PATH with RUSTUP_TOOLCHAIN=stable: the workflow's own
# rust-toolchain.toml, target and RUSTFLAGS (for the guest's wasm build) are not wpkg's.
# Outputs built=true when it compiled, for the save step.
set -euo pipefail
err() { echo "::error::$*"; exit 1; }
dest=${DIR:?}

if [ "${CACHE_HIT:-}" = true ] && [ -x "$dest/bin/wpkg" ]; then
  echo "wpkg from the cache ($KEY)"
else
  command -v cargo >/dev/null \
    || err "cargo is needed to build wpkg from source (no release for this action ref: pin a release tag such as wpkg/wpkg@v1.2.3, set version:, use a runner with Rust, or give wpkg-bin)"
  cd "$GITHUB_ACTION_PATH"
  export RUSTUP_TOOLCHAIN=stable
  unset CARGO_BUILD_TARGET RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
  if command -v rustup >/dev/null; then
    need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n1)
    have=$(rustc --version 2>/dev/null | awk '{print $2}' || true)
    if [ -z "$have" ] || { [ -n "$need" ] &&
      [ "$(printf '%s\n%s\n' "$need" "${have%%-*}" | sort -V | head -n1)" != "$need" ]; }; then
      echo "Rust stable ${have:-(none)} is older than wpkg's rust-version ${need}: updating it"
      rustup toolchain install stable --profile minimal --no-self-update
    fi
  fi
  start=$SECONDS
  echo "building wpkg from the action's source ($(rustc --version)); a release build takes minutes"
  cargo install --locked --force --path cli --root "$dest"
  echo "built in $((SECONDS - start)) s"
  echo "built=true" >> "$GITHUB_OUTPUT"
fi
echo "$dest/bin" >> "$GITHUB_PATH"
"$dest/bin/wpkg" --version
