#!/usr/bin/env bash
# make lint: checkpatch --strict on every patch, shellcheck on every script,
# the series applies to the pristine tree with zero fuzz, and the selftests
# patch matches selftests/cow.
# Usage: lint.sh PRISTINE_SRC SELFTESTS_PATCH
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

src=$(abspath "$1")
stpatch=$2
top=$PWD
fail=0
bad() { printf 'lint: FAIL: %s\n' "$*"; fail=1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mapfile -t series < <(grep -v '^#' patches/series | sed '/^$/d')

step "checkpatch --strict on ${#series[@]} patch(es)"
for p in "${series[@]}"; do
	if ! out=$(cd "$src" && perl scripts/checkpatch.pl --strict --quiet \
		--no-summary "$top/patches/$p" 2>&1) || [ -n "$out" ]; then
		bad "checkpatch: $p"
		printf '%s\n' "$out" | sed 's/^/    /'
	fi
done

step "shellcheck"
scripts=(scripts/*.sh scripts/*/*.sh initramfs/init initramfs/*.sh .ci/run)
shellcheck -x "${scripts[@]}" || bad "shellcheck"

step "series applies to the pristine tree with zero fuzz"
# Only the files the series touches are copied into a scratch tree.
grep -hE '^(\+\+\+ b|--- a)/' "${series[@]/#/patches/}" | sed -E 's#^(\+\+\+ b|--- a)/##' |
	sort -u | while read -r f; do
		[ -f "$src/$f" ] || continue
		mkdir -p "$tmp/tree/$(dirname "$f")"
		cp "$src/$f" "$tmp/tree/$f"
	done
mkdir -p "$tmp/tree"
for p in "${series[@]}"; do
	if ! out=$(patch -d "$tmp/tree" -p1 -F0 -N --no-backup-if-mismatch \
		-i "$top/patches/$p" 2>&1); then
		bad "$p does not apply with zero fuzz"
		printf '%s\n' "$out" | sed 's/^/    /'
	elif grep -q 'offset' <<<"$out"; then
		note "$p applies at an offset:"
		grep 'offset' <<<"$out" | sed 's/^/    /'
	fi
done

step "selftests patch in sync with selftests/cow"
[ "$(tail -n 1 patches/series)" = "$(basename "$stpatch")" ] ||
	bad "the series' last patch is not $(basename "$stpatch")"
scripts/dev/selftests-patch.sh "$src" "$tmp/st.patch"
if ! diff -u "$stpatch" "$tmp/st.patch" >"$tmp/st.diff"; then
	bad "$stpatch is stale: run 'make selftests-patch'"
	head -n 40 "$tmp/st.diff" | sed 's/^/    /'
fi

[ "$fail" = 0 ] || die "make lint found problems (above)"
step "lint clean"
