#!/usr/bin/env bash
# Step `check` of action.yml: every input checked before anything is installed or built
# (a mistake fails in a second, not after a quarter of an hour of `cargo install`), and
# the plan:
#   remote   the reference to push (default ghcr.io/OWNER/REPO:REF_NAME, lowercased)
#   name     remote without its tag; tags: the extra tags, space-separated
#   plan     prebuilt (wpkg-bin), release (download VERSION) or source (cargo install)
#   version  the release to download (X.Y.Z or latest), for plan = release
#   fallback true when a failed download may fall back to building from source
set -euo pipefail
err() { echo "::error::$*"; exit 1; }

# --- what to build and where it goes ------------------------------------------------
[ -f "${INPUT_PATH:-.}/wpkg.toml" ] || err "path: no wpkg.toml in ${INPUT_PATH:-.}"

# The registry part of a reference, as wpkg reads it: a first component with a `.` or a
# `:`, or `localhost`, is a registry; otherwise it is Docker Hub.
registry_of() {
  local ref=$1 first
  first=${ref%%/*}
  if [[ $ref == */* ]] && [[ $first == *.* || $first == *:* || $first == localhost ]]; then
    printf '%s\n' "$first"
  else
    printf 'docker.io\n'
  fi
}
canonical() {
  local r=${1,,}
  r=${r%:443}
  case $r in
    index.docker.io | registry-1.docker.io | registry.hub.docker.com) r=docker.io ;;
  esac
  printf '%s\n' "$r"
}

registry=$(canonical "${INPUT_REGISTRY:-}")
[ -n "$registry" ] || err "registry: empty (give the registry to log in to, e.g. ghcr.io)"
remote=${INPUT_IMAGE:-}
if [ -z "$remote" ]; then
  if [ -z "${GITHUB_REPOSITORY:-}" ] || [ -z "${GITHUB_REF_NAME:-}" ]; then
    err "image: give the reference to push to (e.g. ghcr.io/owner/app:1.0)"
  fi
  [ "$registry" = ghcr.io ] \
    || err "image: the default image is on ghcr.io but registry is ${INPUT_REGISTRY}: give image (e.g. ${INPUT_REGISTRY}/owner/app:1.0)"
  # A tag is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}: other characters of the ref name become -.
  tag=$(printf '%s' "$GITHUB_REF_NAME" | tr -c 'A-Za-z0-9._-' '-')
  tag=${tag#[.-]}
  remote="ghcr.io/${GITHUB_REPOSITORY,,}:${tag:0:128}"
fi
image_registry=$(canonical "$(registry_of "$remote")")
[ "$image_registry" = "$registry" ] \
  || err "image: $remote is on $image_registry, but registry (where the action logs in) is ${INPUT_REGISTRY}: make them the same registry"
name=${remote%%@*}
last=${name##*/}
if [[ $last == *:* ]]; then name=${name%:*}; fi
path_part=${name#"$(registry_of "$remote")"/}
[ "$path_part" = "${path_part,,}" ] \
  || err "image: repository names must be lowercase: $remote (\${{ github.repository }} keeps the owner's capitals; lowercase it, or leave image empty for the lowercased default)"
[[ $remote != *@* ]] || err "image: give a tag, not a digest: $remote"

# --- extra tags: newline- or comma-separated ----------------------------------------
tags=()
while IFS= read -r t; do
  t=${t#"${t%%[![:space:]]*}"}; t=${t%"${t##*[![:space:]]}"}
  [ -n "$t" ] || continue
  [[ $t =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$ ]] \
    || err "tags: '$t' is not a tag (letters, digits, _ . -, at most 128, not starting with . or -)"
  tags+=("$t")
done < <(printf '%s\n' "${INPUT_TAGS:-}" | tr ',' '\n')

# --- signing ---------------------------------------------------------------------
case "${INPUT_SIGN:-}" in
  keyless)
    if [ -z "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ] && [ -z "${SIGSTORE_ID_TOKEN:-}" ]; then
      err "sign: keyless needs the workflow's OIDC token: add 'permissions: id-token: write' to the job (or use sign: key)"
    fi ;;
  key) [ -n "${INPUT_KEY:-}" ] || err "sign: key needs the key input (a cosign private key from a secret)" ;;
  none) ;;
  *) err "sign: '${INPUT_SIGN:-}' is not keyless, key or none" ;;
esac

# --- how wpkg gets here ----------------------------------------------------------
semver='^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$'
version=""
case "${INPUT_VERSION:-}" in
  "") ;;
  latest) version=latest ;;
  *)
    [[ $INPUT_VERSION =~ $semver ]] || err "version: '$INPUT_VERSION' is not a release (X.Y.Z, vX.Y.Z or latest)"
    version=${INPUT_VERSION#v} ;;
esac
if [ -z "$version" ]; then
  # github.action_ref is the ref the workflow pinned (uses: wpkg/wpkg@REF); a composite
  # action only sees it through env:. An exact release tag (v1.2.3) names the release
  # made from that tag; a branch, a major tag (v1) or a commit SHA does not name one.
  ref=${ACTION_REF:-}
  if [ -z "$ref" ] && [[ ${GITHUB_ACTION_PATH:-} == */_actions/*/*/* ]]; then
    ref=${GITHUB_ACTION_PATH##*/} # the runner unpacks the action in _actions/OWNER/REPO/REF
  fi
  if [[ $ref =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]]; then version=${ref#v}; fi
fi
fallback=false
case "${INPUT_INSTALL:-auto}" in
  auto)
    if [ -n "${INPUT_WPKG_BIN:-}" ]; then plan=prebuilt
    elif [ -n "$version" ]; then plan=release; fallback=true
    else plan=source; fi ;;
  release)
    if [ -n "${INPUT_WPKG_BIN:-}" ]; then plan=prebuilt
    else
      plan=release
      if [ -z "$version" ]; then
        version=latest
        echo "::notice::install: release with no version (the action is pinned to '${ref:-}', not to a release tag): installing the latest release"
      fi
    fi ;;
  source) if [ -n "${INPUT_WPKG_BIN:-}" ]; then plan=prebuilt; else plan=source; fi ;;
  *) err "install: '${INPUT_INSTALL}' is not auto, release or source" ;;
esac
if [ "$plan" = prebuilt ]; then
  if [ ! -f "$INPUT_WPKG_BIN" ] || [ ! -x "$INPUT_WPKG_BIN" ]; then
    err "wpkg-bin: $INPUT_WPKG_BIN is not an executable file"
  fi
fi

echo "push $remote${tags[*]:+ (also as: ${tags[*]})}; wpkg: $plan${version:+ $version}"
{
  echo "remote=$remote"
  echo "name=$name"
  echo "tags=${tags[*]}"
  echo "plan=$plan"
  echo "version=$version"
  echo "fallback=$fallback"
} >> "$GITHUB_OUTPUT"
