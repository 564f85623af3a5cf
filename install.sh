#!/bin/sh
# Install wpkg from its GitHub release:
#   curl -fsSL https://github.com/wpkg/wpkg/releases/latest/download/install.sh | sh
#   sh install.sh --version 0.1.0 --prefix "$HOME/.local"
# Run `sh install.sh --help` for the options. POSIX sh; needs curl or wget, tar, gzip and
# sha256sum (or shasum). Nothing is installed unless the archive matches SHA256SUMS.
set -eu

DEFAULT_BASE_URL=https://github.com/wpkg/wpkg/releases
SOURCE_HINT='cargo install --locked --git https://github.com/wpkg/wpkg wpkg'
TARGETS='x86_64-unknown-linux-musl aarch64-unknown-linux-musl x86_64-apple-darwin aarch64-apple-darwin'

usage() {
  cat <<EOF
Install wpkg (docker build/push/run for server-side WebAssembly).

Usage: sh install.sh [OPTIONS]
  curl -fsSL https://github.com/wpkg/wpkg/releases/latest/download/install.sh | sh
  curl -fsSL https://github.com/wpkg/wpkg/releases/latest/download/install.sh | sh -s -- --prefix DIR

Options:
  --version V      the release to install, e.g. 0.1.0 or v0.1.0 (default: the latest)
  --prefix DIR     install under DIR (default: \$HOME/.local):
                     DIR/bin/wpkg, DIR/share/man/man1/wpkg*.1,
                     DIR/share/bash-completion/completions/wpkg,
                     DIR/share/zsh/site-functions/_wpkg,
                     DIR/share/fish/vendor_completions.d/wpkg.fish
  --base-url URL   where the releases are (default: $DEFAULT_BASE_URL;
                   or WPKG_INSTALL_BASE_URL); files at URL/download/vV/ and URL/latest/download/
  --target T       the release target instead of this machine's; one of:
                     $TARGETS
  --print-target   print the release target for this machine and exit
  -h, --help       this help

The archive is checked against the release's SHA256SUMS before anything is installed.
SHA256SUMS itself is signed with Sigstore (keyless, by the release workflow); to check that
too, download SHA256SUMS and SHA256SUMS.sigstore.json from the release and run:
  cosign verify-blob --bundle SHA256SUMS.sigstore.json \\
    --certificate-identity https://github.com/wpkg/wpkg/.github/workflows/release.yml@refs/tags/vV \\
    --certificate-oidc-issuer https://token.actions.githubusercontent.com SHA256SUMS
  sha256sum -c --ignore-missing SHA256SUMS

Other platforms: $SOURCE_HINT
EOF
}

err() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

say() {
  printf '%s\n' "$*"
}

# --- state the EXIT trap cleans up -------------------------------------------------------
NL='
'
TMP=''
PENDING=''      # temporary files in the prefix not yet renamed into place (one a line)
CREATED=''      # directories this run created, deepest first (one a line); removed again
INSTALLED=no    #   if nothing was installed

# Run "$@" on each line of the list $1 (paths may hold spaces).
each_line() {
  _list=$1
  shift
  _old_ifs=$IFS
  IFS=$NL
  set -f
  for _item in $_list; do
    IFS=$_old_ifs
    "$@" "$_item"
  done
  IFS=$_old_ifs
  set +f
}

quiet_rm() { rm -f "$1"; }
quiet_rmdir() { rmdir "$1" 2>/dev/null || true; }

cleanup() {
  each_line "$PENDING" quiet_rm
  if [ "$INSTALLED" = no ]; then
    each_line "$CREATED" quiet_rmdir
  fi
  if [ -n "$TMP" ]; then rm -rf "$TMP"; fi
}

# mkdir -p that remembers which directories it made (for cleanup). On failure it returns 1
# with the reason (the end of mkdir's message) in WHY.
make_dir() {
  _missing=''
  _d=$1
  while [ ! -d "$_d" ]; do
    _missing=$_d$NL$_missing
    _p=$(dirname "$_d")
    [ "$_p" = "$_d" ] && break
    _d=$_p
  done
  WHY=''
  each_line "$_missing" make_one_dir
  [ -z "$WHY" ]
}

make_one_dir() {
  [ -z "$WHY" ] || return 0
  if _out=$(mkdir "$1" 2>&1); then
    CREATED=$1$NL$CREATED
  elif [ ! -d "$1" ]; then
    WHY=${_out##*: }
    WHY=${WHY:-cannot create $1}
  fi
}

# Check we can create a file in DIR (creating DIR if needed).
check_writable() {
  make_dir "$1" ||
    err "cannot write to $1: $WHY; choose another --prefix or run with sudo"
  _probe="$1/.wpkg-install-probe.$$"
  if ! _out=$( (: > "$_probe") 2>&1); then
    err "cannot write to $1: ${_out##*: }; choose another --prefix or run with sudo"
  fi
  rm -f "$_probe"
}

download() { # URL FILE
  if [ "$DL" = curl ]; then
    curl -fsSL --retry 3 --connect-timeout 20 -o "$2" "$1" 2>/dev/null
  else
    wget -q -t 3 -T 20 -O "$2" "$1" 2>/dev/null
  fi
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  else
    shasum -a 256 "$1" | cut -d ' ' -f 1
  fi
}

detect_target() {
  _os=$(uname -s 2>/dev/null || echo unknown)
  _arch=$(uname -m 2>/dev/null || echo unknown)
  case "$_os" in
    Darwin)
      # An x86_64 shell under Rosetta on Apple silicon: install the native build.
      if [ "$_arch" = x86_64 ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || echo 0)" = 1 ]; then
        _arch=arm64
      fi
      ;;
  esac
  case "$_os/$_arch" in
    Linux/x86_64 | Linux/amd64) echo x86_64-unknown-linux-musl ;;
    Linux/aarch64 | Linux/arm64) echo aarch64-unknown-linux-musl ;;
    Darwin/x86_64) echo x86_64-apple-darwin ;;
    Darwin/arm64 | Darwin/aarch64) echo aarch64-apple-darwin ;;
    *) err "no wpkg release for $_os $_arch; build from source: $SOURCE_HINT" ;;
  esac
}

# Install SRC as DEST: copy to a temporary name next to DEST, chmod, rename over DEST.
place() { # SRC DEST MODE
  _tmpf="$(dirname "$2")/.$(basename "$2").tmp.$$"
  PENDING=$PENDING$NL$_tmpf
  cp "$1" "$_tmpf" || err "cannot write $_tmpf; choose another --prefix or run with sudo"
  chmod "$3" "$_tmpf"
  mv -f "$_tmpf" "$2" || err "cannot replace $2; choose another --prefix or run with sudo"
}

main() {
  VERSION=''
  PREFIX=''
  TARGET=''
  BASE_URL=${WPKG_INSTALL_BASE_URL:-$DEFAULT_BASE_URL}
  while [ $# -gt 0 ]; do
    case "$1" in
      -h | --help) usage; exit 0 ;;
      --print-target) detect_target; exit 0 ;;
      --version | --prefix | --base-url | --target)
        if [ $# -lt 2 ] || [ -z "$2" ]; then err "$1 needs a value; see sh install.sh --help"; fi
        opt=$1 val=$2
        shift 2
        ;;
      --version=* | --prefix=* | --base-url=* | --target=*)
        opt=${1%%=*} val=${1#*=}
        shift
        [ -n "$val" ] || err "$opt needs a value; see sh install.sh --help"
        ;;
      *) err "unknown option: $1; see sh install.sh --help" ;;
    esac
    case "$opt" in
      --version) VERSION=$val ;;
      --prefix) PREFIX=$val ;;
      --base-url) BASE_URL=$val ;;
      --target) TARGET=$val ;;
    esac
  done

  VERSION=${VERSION#v}
  case "$VERSION" in
    *[!0-9A-Za-z.+-]*) err "bad --version: $VERSION; give a release number such as 0.1.0" ;;
  esac
  while :; do
    case "$BASE_URL" in */) BASE_URL=${BASE_URL%/} ;; *) break ;; esac
  done
  if [ -z "$PREFIX" ]; then
    [ -n "${HOME:-}" ] || err "HOME is not set; pass --prefix DIR"
    PREFIX=$HOME/.local
  fi
  case "$PREFIX" in
    /*) ;;
    *) PREFIX=$(pwd)/$PREFIX ;;
  esac

  OVERRIDDEN=no
  if [ -n "$TARGET" ]; then
    OVERRIDDEN=yes
    case " $TARGETS " in
      *" $TARGET "*) ;;
      *) err "no wpkg release for target $TARGET (there are: $TARGETS); build from source: $SOURCE_HINT" ;;
    esac
  else
    TARGET=$(detect_target)
  fi

  # Tools, before anything else.
  if command -v curl >/dev/null 2>&1; then DL=curl
  elif command -v wget >/dev/null 2>&1; then DL=wget
  else err "neither curl nor wget is installed; install one of them (e.g. apt-get install curl)"; fi
  for t in tar gzip mktemp; do
    command -v "$t" >/dev/null 2>&1 || err "$t is not installed; install it and run again"
  done
  command -v sha256sum >/dev/null 2>&1 || command -v shasum >/dev/null 2>&1 ||
    err "neither sha256sum nor shasum is installed; install coreutils and run again"

  BIN_DIR=$PREFIX/bin
  MAN_DIR=$PREFIX/share/man/man1
  BASH_DIR=$PREFIX/share/bash-completion/completions
  ZSH_DIR=$PREFIX/share/zsh/site-functions
  FISH_DIR=$PREFIX/share/fish/vendor_completions.d

  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  trap 'exit 141' PIPE

  # The prefix must be writable before anything is downloaded.
  for d in "$BIN_DIR" "$MAN_DIR" "$BASH_DIR" "$ZSH_DIR" "$FISH_DIR"; do
    check_writable "$d"
  done

  TMP=$(mktemp -d "${TMPDIR:-/tmp}/wpkg-install.XXXXXX") ||
    err "cannot create a temporary directory; set TMPDIR to a writable directory"
  SUMS=$TMP/SHA256SUMS

  if [ -z "$VERSION" ]; then
    url=$BASE_URL/latest/download/SHA256SUMS
    download "$url" "$SUMS" ||
      err "could not download $url; check your network, or pass --version V or --base-url URL"
    name=$(awk -v t="$TARGET" '{ n = $2; sub(/^\*/, "", n); if (n ~ ("^wpkg-.*-" t "\\.tar\\.gz$")) { print n; exit } }' "$SUMS")
    [ -n "$name" ] || err "the latest release has no archive for $TARGET ($url); pass --version V or build from source: $SOURCE_HINT"
    VERSION=${name#wpkg-}
    VERSION=${VERSION%-"$TARGET".tar.gz}
  else
    url=$BASE_URL/download/v$VERSION/SHA256SUMS
    download "$url" "$SUMS" ||
      err "could not download $url; is $VERSION a wpkg release? (see $BASE_URL) check --version, --base-url and your network"
  fi

  NAME=wpkg-$VERSION-$TARGET
  ARCHIVE=$NAME.tar.gz
  expected=$(awk -v f="$ARCHIVE" '{ n = $2; sub(/^\*/, "", n); if (n == f) { print $1; exit } }' "$SUMS")
  case "$expected" in
    '') err "SHA256SUMS of release $VERSION has no line for $ARCHIVE; nothing was installed (release $VERSION has no $TARGET build? see $BASE_URL)" ;;
    *[!0-9a-fA-F]*) err "SHA256SUMS of release $VERSION has a malformed line for $ARCHIVE; nothing was installed" ;;
  esac
  [ ${#expected} -eq 64 ] || err "SHA256SUMS of release $VERSION has a malformed line for $ARCHIVE; nothing was installed"

  url=$BASE_URL/download/v$VERSION/$ARCHIVE
  say "downloading $url"
  download "$url" "$TMP/$ARCHIVE" ||
    err "could not download $url; check your network and --base-url"
  actual=$(sha256_of "$TMP/$ARCHIVE")
  expected=$(printf '%s' "$expected" | tr 'A-F' 'a-f')
  [ "$actual" = "$expected" ] ||
    err "checksum mismatch for $ARCHIVE (SHA256SUMS says $expected, the download is $actual): corrupt or tampered download, nothing was installed; try again or report it"

  mkdir "$TMP/x"
  (cd "$TMP/x" && gzip -dc "../$ARCHIVE" | tar -xf -) 2>/dev/null ||
    err "cannot unpack $ARCHIVE (is there free space in ${TMPDIR:-/tmp}?); nothing was installed"
  SRC=$TMP/x/$NAME
  [ -f "$SRC/wpkg" ] || err "$ARCHIVE has no $NAME/wpkg; nothing was installed; report it"
  if [ "$OVERRIDDEN" = no ]; then
    chmod 755 "$SRC/wpkg"
    "$SRC/wpkg" --version >/dev/null 2>&1 ||
      err "the downloaded wpkg does not run on this machine ($TARGET); nothing was installed; build from source: $SOURCE_HINT"
  fi

  # Man pages and completions first, the binary last: bin/wpkg exists only when the rest
  # is in place. Every file lands through a temporary name and a rename.
  mans=0
  for f in "$SRC"/man/*.1; do
    [ -f "$f" ] || continue
    place "$f" "$MAN_DIR/$(basename "$f")" 644
    mans=$((mans + 1))
  done
  [ -f "$SRC/completions/wpkg.bash" ] && place "$SRC/completions/wpkg.bash" "$BASH_DIR/wpkg" 644
  [ -f "$SRC/completions/_wpkg" ] && place "$SRC/completions/_wpkg" "$ZSH_DIR/_wpkg" 644
  [ -f "$SRC/completions/wpkg.fish" ] && place "$SRC/completions/wpkg.fish" "$FISH_DIR/wpkg.fish" 644
  place "$SRC/wpkg" "$BIN_DIR/wpkg" 755
  INSTALLED=yes

  say "installed wpkg $VERSION ($TARGET):"
  say "  $BIN_DIR/wpkg"
  say "  $MAN_DIR/ ($mans man pages)"
  say "  completions: $BASH_DIR/wpkg, $ZSH_DIR/_wpkg, $FISH_DIR/wpkg.fish"
  case ":${PATH:-}:" in
    *":$BIN_DIR:"* | *":$BIN_DIR/:"*) ;;
    *)
      say ""
      say "$BIN_DIR is not on your PATH; add it (e.g. in ~/.profile or ~/.bashrc):"
      say "  export PATH=\"$BIN_DIR:\$PATH\""
      ;;
  esac
  say ""
  say "next: wpkg new http-rust hello && cd hello && wpkg run ."
}

# Everything runs from main, called on the last line, so a truncated download of this
# script (curl | sh) runs nothing.
main "$@"
