#!/usr/bin/env bash
# Step 4 of action.yml: push (credentials through WPKG_REGISTRY*, never written to
# disk) and sign; outputs digest, reference, bundle.
set -euo pipefail
export WPKG_REGISTRY="$INPUT_REGISTRY" WPKG_REGISTRY_USERNAME="$INPUT_USERNAME" WPKG_REGISTRY_PASSWORD="$INPUT_PASSWORD"
if [ -n "${INPUT_INSECURE_REGISTRY:-}" ]; then export WPKG_INSECURE_REGISTRIES="$INPUT_INSECURE_REGISTRY"; fi
if [ -n "${INPUT_FULCIO_URL:-}" ]; then export WPKG_FULCIO_URL="$INPUT_FULCIO_URL"; fi
if [ -n "${INPUT_REKOR_URL:-}" ]; then export WPKG_REKOR_URL="$INPUT_REKOR_URL"; fi
if [ -n "${INPUT_TRUSTED_ROOT:-}" ]; then export WPKG_TRUSTED_ROOT="$INPUT_TRUSTED_ROOT"; fi
args=(push)
bundle=""
keyfile=""
cleanup() { if [ -n "$keyfile" ]; then rm -f "$keyfile"; fi; }
trap cleanup EXIT
case "$INPUT_SIGN" in
  keyless)
    if [ -z "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ] && [ -z "${SIGSTORE_ID_TOKEN:-}" ]; then
      echo "::error::sign: keyless needs the workflow's OIDC token: add 'permissions: id-token: write' to the job (or use sign: key)"
      exit 1
    fi
    bundle="$RUNNER_TEMP/wpkg-signature.sigstore.json"
    args+=(--sign --keyless --bundle "$bundle") ;;
  key)
    [ -n "${INPUT_KEY:-}" ] || { echo "::error::sign: key needs the key input (a cosign private key from a secret)"; exit 1; }
    keyfile=$(mktemp "$RUNNER_TEMP/wpkg-key.XXXXXX")
    chmod 600 "$keyfile"
    printf '%s\n' "$INPUT_KEY" > "$keyfile"
    export COSIGN_PASSWORD="${INPUT_KEY_PASSWORD:-}"
    args+=(--sign --key "$keyfile") ;;
  none) ;;
  *) echo "::error::sign: '$INPUT_SIGN' is not keyless, key or none"; exit 1 ;;
esac
out=$(wpkg "${args[@]}" "$LOCAL_IMAGE" "$REMOTE_IMAGE")
reference=$(printf '%s\n' "$out" | tail -n1)
digest=${reference##*@}
{
  echo "digest=$digest"
  echo "reference=$reference"
  echo "bundle=$bundle"
} >> "$GITHUB_OUTPUT"
name=${REMOTE_IMAGE%%@*}; name=${name%:*}
if [ "$INPUT_SIGN" = keyless ]; then
  scope="${name%/*}/*"
  trust="wpkg trust add '$scope' --issuer https://token.actions.githubusercontent.com --subject-regexp '^https://github.com/${GITHUB_REPOSITORY:-OWNER/REPO}/.github/workflows/.*\$'"
else
  trust="wpkg trust add '${name%/*}/*' --key cosign.pub"
fi
echo "Pushed $reference"
echo "Consumers trust it with: $trust"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    echo "### wpkg published \`$reference\`"
    echo
    echo "Signed: $INPUT_SIGN. Trust it, then run it:"
    echo '```sh'
    echo "$trust"
    echo "wpkg run $reference"
    echo '```'
  } >> "$GITHUB_STEP_SUMMARY"
fi
