#!/usr/bin/env bash
# Step `install` of action.yml: wpkg on PATH, from wpkg-bin or from the release
# (install.sh at the action's root: the archive for this runner, checked against the
# release's SHA256SUMS). When wpkg must be built from the action's source instead (plan
# source, or a release that cannot be had and fallback allowed), it outputs source=true,
# dir (where the built wpkg goes: the cached path) and key (its cache key) for the
# restore / source / save steps.
#
# A release that is missing or out of reach (no such version, no build for this
# runner, network down) falls back to the source build when fallback=true. A release
# whose archive does not match its SHA256SUMS never does: that is a corrupt or tampered
# download, and the step fails.
set -euo pipefail
err() { echo "::error::$*"; exit 1; }

out=$RUNNER_TEMP/wpkg-release
case "$PLAN" in
  prebuilt)
    mkdir -p "$out/bin"
    cp "$WPKG_BIN_INPUT" "$out/bin/wpkg"
    chmod 755 "$out/bin/wpkg"
    ;;
  release)
    args=(--prefix "$out")
    if [ "$VERSION" != latest ]; then args+=(--version "$VERSION"); fi
    log=$(mktemp "$RUNNER_TEMP/wpkg-install-log.XXXXXX")
    start=$SECONDS
    echo "installing wpkg ${VERSION} from ${WPKG_INSTALL_BASE_URL:-the GitHub release}"
    if sh "$GITHUB_ACTION_PATH/install.sh" "${args[@]}" 2>"$log"; then
      cat "$log" >&2
      echo "downloaded and checked in $((SECONDS - start)) s"
      PLAN=release
    else
      cat "$log" >&2
      why=$(grep -m1 '^error:' "$log" || true)
      why=${why#error: }
      why=${why:-install.sh failed}
      case "$why" in
        # Out of reach or not there: the network, the version, this runner's platform.
        "could not download "* | *" has no line for "* | "the latest release has no archive for "* \
          | "no wpkg release for "* | *"does not run on this machine"*)
          [ "$FALLBACK" = true ] || err "install: release: $why"
          echo "::warning::wpkg release ${VERSION} not installed ($why); building wpkg from the action's source instead (minutes; cached afterwards)"
          PLAN=source ;;
        *) err "install: $why" ;;
      esac
    fi
    rm -f "$log"
    ;;
  source) ;;
  *) err "install: unknown plan '$PLAN'" ;;
esac

if [ "$PLAN" = source ]; then
  {
    echo "source=true"
    echo "dir=$RUNNER_TEMP/wpkg-source"
    echo "key=$(bash "$GITHUB_ACTION_PATH/scripts/action/cache-key.sh")"
  } >> "$GITHUB_OUTPUT"
  exit 0
fi
echo "source=false" >> "$GITHUB_OUTPUT"
echo "$out/bin" >> "$GITHUB_PATH"
"$out/bin/wpkg" --version
