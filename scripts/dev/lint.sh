#!/usr/bin/env bash
# make lint: checkpatch --strict on every patch, shellcheck on every script,
# the series applies to the pristine tree with zero fuzz (patch(1), as
# quilt applies it) and with `git am` to a git tree of the pristine source,
# and patches/ is what `make series` makes of it: the selftests patch in
# sync with selftests/cow, every patch in git format-patch form, the cover
# letter's shortlog and diffstat current.
# Usage: lint.sh PRISTINE_SRC
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

src=$(abspath "$1")
top=$PWD
fail=0
bad() { printf 'lint: FAIL: %s\n' "$*"; fail=1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mapfile -t series < <(series_patches patches)
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
cover=patches/0000-cover-letter.patch

step "checkpatch --strict on ${#series[@]} patch(es)"
# The pinned source is a release tarball, without the history checkpatch
# would look the commit ids of Fixes: tags up in: it cannot know them.
for p in "${series[@]}"; do
	if ! out=$(cd "$src" && perl scripts/checkpatch.pl --strict --quiet \
		--no-summary --ignore UNKNOWN_COMMIT_ID "$top/patches/$p" 2>&1) ||
		[ -n "$out" ]; then
		bad "checkpatch: $p"
		printf '%s\n' "$out" | sed 's/^/    /'
	fi
done

step "shellcheck"
scripts=(scripts/*.sh scripts/*/*.sh initramfs/init initramfs/*.sh .ci/run)
shellcheck -x "${scripts[@]}" || bad "shellcheck"

series_files patches >"$tmp/files"

step "series applies to the pristine tree with zero fuzz, at no offset"
# Only the files the series touches are copied into a scratch tree.
mkdir -p "$tmp/tree"
copy_pristine "$src" "$tmp/tree" <"$tmp/files"
for p in "${series[@]}"; do
	if ! out=$(patch -d "$tmp/tree" -p1 -F0 -N --no-backup-if-mismatch \
		-i "$top/patches/$p" 2>&1); then
		bad "$p does not apply with zero fuzz"
		printf '%s\n' "$out" | sed 's/^/    /'
	elif grep -q 'offset' <<<"$out"; then
		bad "$p applies at an offset: run 'make series'"
		grep 'offset' <<<"$out" | sed 's/^/    /'
	fi
done

step "git am applies the series to a git tree of the pristine source"
# A clone of the pristine commit that checks out only those files: git am
# reads and writes no others.
repo=$(stock_git "$src")
git clone -q --shared --no-checkout "$repo" "$tmp/am"
sed 's#^#/#' "$tmp/files" | git -C "$tmp/am" sparse-checkout set --no-cone --stdin
git -C "$tmp/am" read-tree -mu HEAD
if ! out=$(git -C "$tmp/am" -c user.name=lint -c user.email=lint@localhost \
	am --quiet "${series[@]/#/$top/patches/}" 2>&1); then
	bad "git am: the series does not apply"
	printf '%s\n' "$out" | sed 's/^/    /'
elif [ "$(git -C "$tmp/am" rev-list --count HEAD)" != $((${#series[@]} + 1)) ]; then
	bad "git am: not one commit per patch"
fi

step "patches/ is what 'make series' makes of it"
cp -r patches "$tmp/patches"
scripts/dev/selftests-patch.sh "$src" "$tmp/patches/${series[-1]}"
scripts/dev/format-series.sh "$src" "$tmp/patches" >/dev/null
if ! diff -ru patches "$tmp/patches" >"$tmp/series.diff"; then
	bad "patches/ is stale or not in git format-patch form: run 'make series'"
	head -n 40 "$tmp/series.diff" | sed 's/^/    /'
fi
if [ ! -f "$cover" ] || grep -q '\*\*\* .* HERE \*\*\*' "$cover"; then
	bad "$cover has no subject or text of its own"
fi

[ "$fail" = 0 ] || die "make lint found problems (above)"
step "lint clean"
