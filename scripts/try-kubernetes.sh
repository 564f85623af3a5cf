#!/usr/bin/env bash
# wpkg images in Kubernetes pods, the way the kubelet drives a node, without a cluster:
# Debian's containerd (1.6.20) with its CRI plugin, started as root in a private
# directory, the runtime handler `wpkg` (containerd-shim-wpkg-v1), a pause image built
# here, a loopback registry, and a CRI client that fills requests as the kubelet does
# (tests/harness/cri.rs). Runs tests/bin/try_kubernetes.rs (release build):
#   1. the node and the registry;
#   2. examples/http-fetch in a pod: its outbound call denied, then, with one line
#      added to wpkg.toml and a new image, allowed;
#   3. a pod that sets a variable the image does not declare: refused at
#      StartContainer, with the reason in the CRI error the kubelet shows;
#   4. pod start to first answered request (N rounds, default 7): the wpkg image under
#      the `wpkg` handler against a static C hello server under `runc`.
# Stops everything it started. Exits non-zero on any miss.
# Needs root and `bash scripts/setup.sh` (containerd, protobuf-compiler, gcc...).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "try-kubernetes: containerd needs root; run as root" >&2; exit 1; }
bash scripts/setup.sh >/dev/null
echo "== building wpkg, containerd-shim-wpkg-v1 and the scenario (release)"
# The same two builds the harness asks for (features unify per command), so that it
# finds them done.
cargo build -q --release --locked -p wpkg -p wpkg-tests --bins
cargo build -q --release --locked -p wpkg-shim --bins
exec "${CARGO_TARGET_DIR:-target}/release/try-kubernetes"
