#!/usr/bin/env bash
# Prints the cache key of a wpkg built from the action's own source:
#   wpkg-source-RUNNER_OS-RUNNER_ARCH-ImageOS-HASH
# ImageOS (ubuntu22, ubuntu24, macos14, ...: the hosted runner's image) keeps a binary
# linked against one image's libc from being restored on another; HASH covers every file
# the build reads: the workspace manifests and lock file, and the crates' files (sources,
# templates, embedded JSON and keys), not the docs, tests, fuzz targets or scripts.
set -euo pipefail
cd "${GITHUB_ACTION_PATH:?}"
sum=$(
  {
    for f in Cargo.toml Cargo.lock rust-toolchain rust-toolchain.toml; do
      if [ -f "$f" ]; then echo "./$f"; fi
    done
    find . \( -path ./target -o -path ./.git -o -path ./.github -o -path ./.ci \
      -o -path ./docs -o -path ./tests -o -path ./fuzz -o -path ./bench -o -path ./deploy \
      -o -path ./examples -o -path ./scripts \) -prune -o -type f -path './*/*' -print
  } | LC_ALL=C sort | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -c1-32
)
printf 'wpkg-source-%s-%s-%s-%s\n' "${RUNNER_OS:-$(uname -s)}" "${RUNNER_ARCH:-$(uname -m)}" \
  "${ImageOS:-noimage}" "$sum"
