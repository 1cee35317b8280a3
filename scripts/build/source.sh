#!/usr/bin/env bash
# Prepare a kernel source tree under build/.
# Usage: source.sh DEST series|stock
#   DEST    the tree to create or refresh (e.g. build/linux)
#   series  apply patches/series with quilt, zero fuzz
#   stock   leave the tree pristine
# env: LINUX_DEB_VERSION (pinned package), KSRC (an existing 6.12.y tree to
#      copy instead of the package; it is never modified)
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

dest=$1
mode=$2
top=$PWD
tarball=/usr/src/linux-source-6.12.tar.xz
mkdir -p out/build build
log=$top/out/build/source-$(basename "$dest").log

if [ -n "${KSRC:-}" ]; then
	[ -f "$KSRC/Makefile" ] || die "KSRC=$KSRC is not a kernel tree"
	base="ksrc:$(abspath "$KSRC")"
else
	base="deb:$LINUX_DEB_VERSION"
fi

# (Re)create the tree when its base changed or it was never finished.
if [ ! -f "$dest/.cowlab-base" ] || [ "$(cat "$dest/.cowlab-base")" != "$base" ]; then
	rm -rf "$dest" "$dest.tmp"
	mkdir -p "$dest.tmp"
	if [ -n "${KSRC:-}" ]; then
		step "copying $KSRC to $dest"
		run_logged "$log" rsync -a --exclude=.git --exclude=.pc \
			--exclude='*.o' --exclude='*.cmd' "$KSRC/" "$dest.tmp/"
	else
		[ -f "$tarball" ] || die "$tarball missing: run scripts/build/deps.sh"
		step "unpacking linux-source-6.12 $LINUX_DEB_VERSION to $dest"
		run_logged "$log" tar -xJf "$tarball" -C "$dest.tmp" --strip-components=1
	fi
	grep -q '^PATCHLEVEL = 12$' "$dest.tmp/Makefile" ||
		die "$base is not a 6.12 tree"
	echo "$base" >"$dest.tmp/.cowlab-base"
	mv "$dest.tmp" "$dest"
fi

[ "$mode" = stock ] && exit 0

# Apply the series with quilt. The tree's patches/ is a link to the repo's,
# so 'quilt refresh' in the tree edits the repo's patch files directly.
ln -sfn "$top/patches" "$dest/patches"
cd "$dest"
quilt() { command quilt --quiltrc "$top/scripts/build/quiltrc" "$@"; }
# .cowlab-series records "PATCH MD5" for each applied patch. When a patch
# changed, unwind only down to it, so that files of unchanged patches keep
# their timestamps and kbuild rebuilds little.
stamp=.cowlab-series
# Only what a patch changes counts (patch_md5): a commit message edit or
# a reformat needs no re-apply.
want=$(series_patches patches | while read -r p; do echo "$p $(patch_md5 "patches/$p")"; done)
have=$(cat "$stamp" 2>/dev/null || true)
[ "$have" = "$want" ] && [ -n "$want" ] && exit 0
# keep: the last patch of the longest common prefix of the two lists.
keep=""
mapfile -t had <<<"$have"
mapfile -t wanted <<<"$want"
for i in "${!had[@]}"; do
	if [ -z "${had[$i]}" ] || [ "${had[$i]}" != "${wanted[$i]:-}" ]; then
		break
	fi
	keep=${had[$i]%% *}
done
# The tree must hold exactly the unchanged prefix before pushing again
# (quilt names the patches without the patches/ directory).
if [ -n "$keep" ] && quilt applied 2>/dev/null | grep -qxF -- "$keep"; then
	if [ "$(quilt top 2>/dev/null)" != "$keep" ]; then
		run_logged "$log" quilt pop -f "$keep"
	fi
elif quilt applied >/dev/null 2>&1; then
	run_logged "$log" quilt pop -a -f
fi
: >"$stamp"
step "applying patches/series (zero fuzz)"
if ! quilt push -a --fuzz=0 >"$log" 2>&1 && ! grep -q 'fully applied' "$log"; then
	die "the series does not apply to $base with zero fuzz" "$log"
fi
if grep -E 'with fuzz|offset' "$log"; then
	note "warning: hunks applied at an offset (see $log)"
fi
echo "$want" >"$stamp"
note "$(quilt applied | wc -l) patch(es) applied"
