#!/usr/bin/env bash
# Package one wpkg release archive, reproducibly:
#
#   scripts/package.sh BIN TARGET VERSION OUTDIR
#
# makes OUTDIR/wpkg-VERSION-TARGET.tar.gz holding wpkg-VERSION-TARGET/ with
#   wpkg          the binary BIN (mode 755)
#   README.md     and LICENSE* / COPYING* when the repository has them
#   man/          wpkg.1 and wpkg-SUBCOMMAND.1, written by `GEN man --out man`
#   completions/  wpkg.bash, _wpkg (zsh), wpkg.fish, _wpkg.ps1, from `GEN completions SHELL`
# then (re)writes OUTDIR/SHA256SUMS over every wpkg-*.tar.gz in OUTDIR (sorted, sha256sum
# format) and prints the archive's path and size.
#
# GEN is BIN, or $WPKG_GEN_BIN when set: a wpkg that runs on this machine, for archives
# whose BIN does not (cross builds: aarch64 on an x86_64 runner). If GEN fails to write the
# man pages or a completion, packaging fails.
# The archive depends only on its inputs: names sorted, mtime $SOURCE_DATE_EPOCH (default
# 0), owner root, fixed modes, `gzip -n`. Needs GNU tar (`gtar` on macOS: brew install gnu-tar).
set -euo pipefail

die() { echo "package.sh: error: $*" >&2; exit 1; }

[ $# -eq 4 ] || die "usage: scripts/package.sh BIN TARGET VERSION OUTDIR"
BIN=$1 TARGET=$2 VERSION=${3#v} OUTDIR=$4
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GEN=${WPKG_GEN_BIN:-$BIN}
EPOCH=${SOURCE_DATE_EPOCH:-0}

[ -f "$BIN" ] || die "no binary at $BIN"
[[ $TARGET =~ ^[a-z0-9_]+(-[a-z0-9_]+)+$ ]] || die "bad target: $TARGET"
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] || die "bad version: $VERSION"
[[ $EPOCH =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH must be a number of seconds, not: $EPOCH"
[ -x "$GEN" ] || die "$GEN is not executable (set WPKG_GEN_BIN to a wpkg that runs here)"

TAR=tar
command -v gtar >/dev/null 2>&1 && TAR=gtar
"$TAR" --version 2>/dev/null | grep -q 'GNU tar' ||
  die "GNU tar is needed for a reproducible archive (macOS: brew install gnu-tar)"
if command -v sha256sum >/dev/null 2>&1; then SHA256=(sha256sum)
elif command -v shasum >/dev/null 2>&1; then SHA256=(shasum -a 256)
else die "sha256sum (or shasum) is needed"; fi

NAME=wpkg-$VERSION-$TARGET
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; rm -f "$OUTDIR/.$NAME.tar.gz.tmp" "$OUTDIR/.SHA256SUMS.tmp"' EXIT
umask 022
STAGE=$WORK/$NAME
mkdir -p "$STAGE/man" "$STAGE/completions"

cp "$BIN" "$STAGE/wpkg"
chmod 755 "$STAGE/wpkg"
cp "$ROOT/README.md" "$STAGE/README.md"
for f in "$ROOT"/LICENSE* "$ROOT"/COPYING*; do
  [ -f "$f" ] && cp "$f" "$STAGE/"
done

# Man pages and completions come from the binary itself, so they always match it.
"$GEN" man --out "$STAGE/man" ||
  die "'$GEN man --out DIR' failed: the man pages could not be generated"
[ -s "$STAGE/man/wpkg.1" ] || die "'$GEN man --out DIR' wrote no wpkg.1"
for pair in bash:wpkg.bash zsh:_wpkg fish:wpkg.fish powershell:_wpkg.ps1; do
  shell=${pair%%:*} file=${pair#*:}
  "$GEN" completions "$shell" > "$STAGE/completions/$file" ||
    die "'$GEN completions $shell' failed"
  [ -s "$STAGE/completions/$file" ] || die "'$GEN completions $shell' printed nothing"
done
find "$STAGE" -type d -exec chmod 755 {} +
find "$STAGE" -type f ! -path "$STAGE/wpkg" -exec chmod 644 {} +

ARCHIVE=$OUTDIR/$NAME.tar.gz
(
  cd "$WORK"
  LC_ALL=C "$TAR" --format=gnu --sort=name --mtime="@$EPOCH" \
    --owner=0 --group=0 --numeric-owner --mode='u+rwX,go+rX,go-w' \
    -cf - "$NAME"
) | gzip -n -9 > "$OUTDIR/.$NAME.tar.gz.tmp"
mv -f "$OUTDIR/.$NAME.tar.gz.tmp" "$ARCHIVE"

(
  cd "$OUTDIR"
  shopt -s nullglob
  printf '%s\n' wpkg-*.tar.gz | LC_ALL=C sort | while IFS= read -r f; do
    "${SHA256[@]}" "$f"
  done > .SHA256SUMS.tmp
  mv -f .SHA256SUMS.tmp SHA256SUMS
)

SIZE=$(wc -c < "$ARCHIVE" | tr -d ' ')
echo "$ARCHIVE ($SIZE bytes, $(awk -v s="$SIZE" 'BEGIN { printf "%.1f", s / 1048576 }') MiB)"
