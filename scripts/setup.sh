#!/usr/bin/env bash
# Installs what building and testing wpkg needs on a fresh Debian machine: cargo-deny,
# the wasm targets, for the registry tests Debian's docker-registry (the CNCF
# distribution server), skopeo, the `oras` Python package, and sigstore-python (the
# independent verifier and signer of the keyless interop tests); for the containerd
# shim protoc, libseccomp/libdbus headers, and containerd itself.
# Idempotent; safe to run again.
set -euo pipefail
rustup target add wasm32-wasip1 wasm32-wasip2
need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v sha256sum >/dev/null || need_apt+=(coreutils)
command -v gzip >/dev/null || need_apt+=(gzip)
command -v timeout >/dev/null || need_apt+=(coreutils)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
[ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
command -v skopeo >/dev/null || need_apt+=(skopeo)
# containerd-shim-wpkg-v1: protoc and the C libraries runwasi's crates link at build
# time; Debian's containerd (1.6.20, with runc) and gcc for its tests.
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
pkg-config --exists libseccomp 2>/dev/null || need_apt+=(libseccomp-dev)
pkg-config --exists dbus-1 2>/dev/null || need_apt+=(libdbus-1-dev)
command -v containerd >/dev/null || need_apt+=(containerd)
command -v runc >/dev/null || need_apt+=(runc)
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev)
# The first-service guide's test edits wpkg.toml with perl; the release tests strip a
# copy of wpkg (binutils) and serve archives with python3's http.server.
command -v perl >/dev/null || need_apt+=(perl)
command -v strip >/dev/null || need_apt+=(binutils)
command -v wget >/dev/null || need_apt+=(wget)
# The key-value tests start their own Redis server on a free loopback port.
command -v redis-server >/dev/null || need_apt+=(redis-server)
# The template tests' JavaScript toolchain runs on Node.js (20 here; Debian's is 18).
command -v npm >/dev/null || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# The distribution server Debian installs may start as a service on :5000; the tests
# start their own on free ports, so it is not needed (and not touched here).
if ! python3 -c 'import oras.provider' 2>/dev/null; then
  python3 -m pip install -q oras 2>/dev/null \
    || python3 -m pip install -q --break-system-packages oras
fi
if ! command -v sigstore >/dev/null || ! python3 -c 'import sigstore' 2>/dev/null; then
  python3 -m pip install -q 'sigstore>=4,<5' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'sigstore>=4,<5'
fi
# scripts/try-action.sh reads action.yml with PyYAML.
if ! python3 -c 'import yaml' 2>/dev/null; then
  python3 -m pip install -q pyyaml 2>/dev/null || python3 -m pip install -q --break-system-packages pyyaml
fi
# wasi-nn's tests: onnx builds the test's model, onnxruntime ships libonnxruntime.so
# (loaded by wpkg at run time through ORT_DYLIB_PATH).
if ! python3 -c 'import onnx, onnxruntime' 2>/dev/null; then
  python3 -m pip install -q onnx==1.23.2 onnxruntime==1.32.0 2>/dev/null \
    || python3 -m pip install -q --break-system-packages onnx==1.23.2 onnxruntime==1.32.0
fi
# The http-js and http-python templates' toolchains (tests/all/templates.rs), installed
# globally so a project from `wpkg new` builds without its own npm install or venv.
if ! command -v componentize-js >/dev/null; then
  npm install -g --no-audit --no-fund -q @bytecodealliance/componentize-js@0.23.0
fi
if ! command -v componentize-py >/dev/null; then
  python3 -m pip install -q componentize-py==0.25.1 2>/dev/null \
    || python3 -m pip install -q --break-system-packages componentize-py==0.25.1
  command -v pyenv >/dev/null && pyenv rehash || true
fi
# scripts/gates.sh (run by CI) checks licenses, duplicate versions and advisories.
if ! command -v cargo-deny >/dev/null; then
  cargo install --locked cargo-deny@0.20.2
fi
