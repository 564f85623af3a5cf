#!/usr/bin/env bash
# Step `push` of action.yml: push and sign (once, by digest: the signature covers every
# tag of that digest), push the extra tags, keep the login for the job's later steps,
# print the consumers' exact trust line; outputs digest, reference, bundle.
#
# Credentials go to wpkg through WPKG_REGISTRY / WPKG_REGISTRY_USERNAME /
# WPKG_REGISTRY_PASSWORD, never written to a file; they are also exported to the job's
# later steps through GITHUB_ENV (masked in the log), so a later `run: wpkg push ...`
# to the same registry works. GITHUB_ENV lasts as long as the job.
set -euo pipefail
err() { echo "::error::$*"; exit 1; }

if [ -n "${INPUT_USERNAME:-}" ] && [ -n "${INPUT_PASSWORD:-}" ]; then
  export WPKG_REGISTRY="$INPUT_REGISTRY" WPKG_REGISTRY_USERNAME="$INPUT_USERNAME" WPKG_REGISTRY_PASSWORD="$INPUT_PASSWORD"
  keep=(WPKG_REGISTRY WPKG_REGISTRY_USERNAME WPKG_REGISTRY_PASSWORD)
else
  unset WPKG_REGISTRY WPKG_REGISTRY_USERNAME WPKG_REGISTRY_PASSWORD
  keep=()
  echo "no username/password: pushing with the credentials wpkg finds (docker login / wpkg login)"
fi
if [ -n "${INPUT_INSECURE_REGISTRY:-}" ]; then
  export WPKG_INSECURE_REGISTRIES="$INPUT_INSECURE_REGISTRY"
  keep+=(WPKG_INSECURE_REGISTRIES)
fi
if [ -n "${INPUT_FULCIO_URL:-}" ]; then export WPKG_FULCIO_URL="$INPUT_FULCIO_URL"; fi
if [ -n "${INPUT_REKOR_URL:-}" ]; then export WPKG_REKOR_URL="$INPUT_REKOR_URL"; fi
if [ -n "${INPUT_TRUSTED_ROOT:-}" ]; then export WPKG_TRUSTED_ROOT="$INPUT_TRUSTED_ROOT"; fi

# The login stays for the rest of the job (like docker/login-action), as environment
# variables: heredoc syntax with a random delimiter, so no value can end the entry early.
if [ -n "${GITHUB_ENV:-}" ] && [ ${#keep[@]} -gt 0 ]; then
  echo "::add-mask::$INPUT_PASSWORD"
  delim="WPKG_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  for v in "${keep[@]}"; do
    [[ ${!v} != *"$delim"* ]] || err "cannot export $v"
    printf '%s<<%s\n%s\n%s\n' "$v" "$delim" "${!v}" "$delim" >> "$GITHUB_ENV"
  done
fi

args=(push)
bundle=""
keyfile=""
errlog=$(mktemp "$RUNNER_TEMP/wpkg-push.XXXXXX")
cleanup() {
  if [ -n "$keyfile" ]; then rm -f "$keyfile"; fi
  rm -f "$errlog"
}
trap cleanup EXIT
case "$INPUT_SIGN" in
  keyless)
    bundle="$RUNNER_TEMP/wpkg-signature.sigstore.json"
    args+=(--sign --keyless --bundle "$bundle") ;;
  key)
    keyfile=$(mktemp "$RUNNER_TEMP/wpkg-key.XXXXXX")
    chmod 600 "$keyfile"
    printf '%s\n' "$INPUT_KEY" > "$keyfile"
    export COSIGN_PASSWORD="${INPUT_KEY_PASSWORD:-}"
    args+=(--sign --key "$keyfile") ;;
  none) ;;
  *) err "sign: '$INPUT_SIGN' is not keyless, key or none" ;;
esac

if ! out=$(wpkg "${args[@]}" "$LOCAL_IMAGE" "$REMOTE_IMAGE" 2>"$errlog"); then
  cat "$errlog" >&2
  exit 1
fi
cat "$errlog" >&2
reference=$(printf '%s\n' "$out" | tail -n1)
digest=${reference##*@}
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || err "wpkg push printed no digest: $out"
{
  echo "digest=$digest"
  echo "reference=$reference"
  echo "bundle=$bundle"
} >> "$GITHUB_OUTPUT"
echo "Pushed $reference"

# Extra tags: the same manifest under more tags. The signatures are by digest, so the one
# made above covers them all (wpkg push sends the stored ones along; nothing new is signed).
pushed=("$REMOTE_IMAGE")
read -ra tags <<< "${TAGS:-}"
for t in "${tags[@]}"; do
  more=$(wpkg push -q "$LOCAL_IMAGE" "$NAME:$t" | tail -n1)
  [ "${more##*@}" = "$digest" ] || err "tags: $NAME:$t was pushed as ${more##*@}, not $digest"
  echo "Pushed $more"
  pushed+=("$NAME:$t")
done

# What consumers add to trust exactly this publisher for this repository.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
regex_escape() { printf '%s' "$1" | sed -e 's/[][\.^$|?*+(){}]/\\&/g'; }
also=""
if [ "$INPUT_SIGN" = keyless ]; then
  # The certificate's own subject (wpkg prints it) is exact even in a reusable workflow,
  # whose certificate names the called workflow (job_workflow_ref), not GITHUB_WORKFLOW_REF.
  # wpkg prints: signed REF keylessly as SUBJECT (issuer ISSUER) (Rekor log index N)
  signed=$(sed -n 's/^signed .* keylessly as \(.*\) (Rekor log index -\{0,1\}[0-9]*)$/\1/p' "$errlog" | tail -n1)
  identity=${signed% (issuer *)}
  issuer=""
  if [ "$identity" != "$signed" ]; then issuer=${signed##* (issuer }; issuer=${issuer%)}; fi
  if [ -z "$identity" ] && [ -n "${GITHUB_WORKFLOW_REF:-}" ]; then
    identity="${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_WORKFLOW_REF"
  fi
  issuer=${issuer:-https://token.actions.githubusercontent.com}
  if [ -n "$identity" ]; then
    trust="wpkg trust add $(sq "$NAME") --issuer $issuer --subject $(sq "$identity")"
    # Releases to come: the same workflow file, any tag.
    if [[ $identity == *@refs/tags/* ]]; then
      also="wpkg trust add $(sq "$NAME") --issuer $issuer --subject-regexp $(sq "^$(regex_escape "${identity%%@refs/tags/*}@refs/tags/").+\$")"
    fi
  else
    trust="wpkg trust add $(sq "$NAME") --issuer $issuer --subject 'https://github.com/OWNER/REPO/.github/workflows/FILE.yml@REF'"
  fi
elif [ "$INPUT_SIGN" = key ]; then
  trust="wpkg trust add $(sq "$NAME") --key cosign.pub"
else
  trust=""
fi
if [ -n "$trust" ]; then
  echo "Consumers trust it with: $trust"
  if [ -n "$also" ]; then echo "  (this workflow's later tags too: $also)"; fi
fi
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    echo "### wpkg published \`$reference\`"
    echo
    if [ ${#pushed[@]} -gt 1 ]; then
      # shellcheck disable=SC2016 # Markdown code spans
      echo "Tags: $(printf '`%s` ' "${pushed[@]}")"
      echo
    fi
    if [ -n "$trust" ]; then
      echo "Signed: $INPUT_SIGN. Trust it, then run it:"
      echo '```sh'
      echo "$trust"
      echo "wpkg run $reference"
      echo '```'
      if [ -n "$also" ]; then
        echo "To trust this workflow's releases from later tags as well:"
        echo '```sh'
        echo "$also"
        echo '```'
      fi
    else
      echo "Not signed. Run it:"
      echo '```sh'
      echo "wpkg run $reference"
      echo '```'
    fi
  } >> "$GITHUB_STEP_SUMMARY"
fi
