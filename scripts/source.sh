#!/usr/bin/env bash
# Prepare a kernel source tree under build/.
# Usage: source.sh DEST series|stock
#   DEST    the tree to create or refresh (e.g. build/linux)
#   series  apply patches/series with quilt, zero fuzz
#   stock   leave the tree pristine
# env: LINUX_DEB_VERSION (pinned package), KSRC (an existing 6.12.y tree to
#      copy instead of the package; it is never modified)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

dest=$1
mode=$2
top=$PWD
tarball=/usr/src/linux-source-6.12.tar.xz
mkdir -p out build
log=$top/out/source-$(basename "$dest").log

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
		[ -f "$tarball" ] || die "$tarball missing: run scripts/deps.sh"
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
export QUILT_PATCHES=patches QUILT_PC=.pc
stamp=.cowlab-series
want=$(cat patches/series patches/*.patch 2>/dev/null | md5sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
	! quilt unapplied >/dev/null 2>&1; then
	exit 0
fi
# Something changed: unwind whatever is applied and push the series again.
if quilt applied >/dev/null 2>&1; then
	run_logged "$log" quilt pop -a -f
fi
rm -f "$stamp"
step "applying patches/series (zero fuzz)"
if ! quilt push -a --fuzz=0 >"$log" 2>&1; then
	die "the series does not apply to $base with zero fuzz" "$log"
fi
if grep -E 'with fuzz|offset' "$log"; then
	note "warning: hunks applied at an offset (see $log)"
fi
echo "$want" >"$stamp"
note "$(quilt applied | wc -l) patch(es) applied"
