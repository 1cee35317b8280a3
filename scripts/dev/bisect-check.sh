#!/usr/bin/env bash
# make bisect-check: build the kernel at every prefix of the series, as
# git bisect would meet it (patch 1, patches 1-2, ..., all of them).
# TREE is a git checkout of the pristine source with the series applied
# by git am, one commit per patch; each step checks out one commit (only
# the files that patch touches change) and rebuilds in one build
# directory, so kbuild recompiles what the patch affects. Not run by CI:
# most patches change a header, and the whole takes about an hour on 2
# cores. Results: out/bisect-check.txt, one line per prefix.
# Usage: bisect-check.sh PRISTINE_SRC TREE FRAGMENT...
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

src=$(abspath "$1")
tree=$(abspath "$2")
shift 2
top=$PWD
obj=$tree-obj
res=$top/out/bisect-check.txt
mapfile -t series < <(series_patches patches)
n=${#series[@]}
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
repo=$(stock_git "$src")

step "checking out the pristine source to $tree and applying the series with git am"
rm -rf "$tree"
mkdir -p out
git clone -q --shared "$repo" "$tree"
cp "$src/.cowlab-base" "$tree/.cowlab-base"
git -C "$tree" -c user.name=bisect-check -c user.email=bisect-check@localhost \
	am --quiet "${series[@]/#/$top/patches/}" ||
	die "git am of the series onto $tree failed"
mapfile -t revs < <(git -C "$tree" rev-list --reverse HEAD~"$n"..HEAD)

fail=0
: >"$res"
for i in "${!series[@]}"; do
	step "prefix $((i + 1))/$n: ${series[$i]}"
	git -C "$tree" checkout -q --detach "${revs[$i]}"
	if scripts/build/build-kernel.sh "$tree" "$obj" "$@"; then
		echo "ok $((i + 1)) ${series[$i]}" >>"$res"
	else
		echo "not ok $((i + 1)) ${series[$i]} (log: out/build/kernel-$(basename "$obj").log)" >>"$res"
		log=out/build/kernel-$(basename "$obj").log
		[ ! -f "$log" ] || cp "$log" "out/bisect-check-$((i + 1)).log"
		fail=1
	fi
done
cat "$res"
[ "$fail" = 0 ] || die "a prefix of the series does not build" "$res"
step "every prefix of the series builds"
