#!/usr/bin/env bash
# Build kselftest programs statically and stage them for the guest.
# Usage: ksft-build.sh SRC OBJ DEST TARGET...
#   SRC     kernel tree (its tools/testing/selftests and lib.mk are used)
#   OBJ     kernel build directory (its usr/include has the uapi headers)
#   DEST    staging directory: DEST/kselftest-list.txt, DEST/TARGET/...
#   TARGET  a kselftest target ("cow" is built from this repo's
#           selftests/cow, the others from SRC), or TARGET:PROGRAM for a
#           single program of it (e.g. mm:cow)
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

src=$(abspath "$1")
obj=$(abspath "$2")
dest=$(abspath "$3")
shift 3
top=$PWD
ksft=$src/tools/testing/selftests
[ -f "$obj/usr/include/linux/mman.h" ] || die "no headers in $obj/usr/include: build the kernel first"
rm -rf "$dest"
mkdir -p "$dest" out/build

for spec in "$@"; do
	t=${spec%%:*}
	prog=""
	[ "$spec" != "$t" ] && prog=${spec#*:}
	dir=$ksft/$t
	[ "$t" = cow ] && dir=$top/selftests/cow
	[ -d "$dir" ] || die "no kselftest target '$t' in $ksft"
	build=$top/build/ksft-build/$t
	log=$top/out/build/ksft-$t.log
	mkdir -p "$build" "$dest/$t"
	step "building kselftest $spec (static)"
	kmake() {
		make -C "$dir" KSFT_DIR="$ksft" OUTPUT="$build" COLLECTION="$t" \
			KHDR_INCLUDES="-isystem $obj/usr/include" LDFLAGS=-static "$@"
	}
	if [ -n "$prog" ]; then
		run_logged "$log" kmake "$build/$prog"
		progs=$prog
	else
		run_logged "$log" kmake all
		progs=$(kmake -s --no-print-directory emit_tests 2>/dev/null | sed -n "s/^$t://p")
	fi
	for p in $progs; do
		if [ -f "$build/$p" ]; then
			cp "$build/$p" "$dest/$t/"
		elif [ -f "$dir/$p" ]; then
			cp "$dir/$p" "$dest/$t/"
		else
			die "kselftest $t did not produce $p" "$log"
		fi
		echo "$t:$p" >>"$dest/kselftest-list.txt"
	done
	[ -f "$dir/settings" ] && cp "$dir/settings" "$dest/$t/"
done
note "staged $(wc -l <"$dest/kselftest-list.txt") program(s) in $dest"
