#!/usr/bin/env bash
# Build the guest benchmark programs (bench/*.c) statically.
# Usage: bench-build.sh OBJ DEST
#   OBJ   kernel build directory (its usr/include has the uapi headers)
#   DEST  staging directory for the guest's /bench
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

obj=$1 dest=$2
rm -rf "$dest"
mkdir -p "$dest" out/build
shopt -s nullglob
for c in bench/*.c; do
	p=$(basename "$c" .c)
	run_logged "out/build/bench-$p.log" gcc -O2 -Wall -static \
		-isystem "$obj/usr/include" -o "$dest/$p" "$c" -lpthread -lm
done
