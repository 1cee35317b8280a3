#!/usr/bin/env bash
# Configure and build a kernel out of tree.
# Usage: build-kernel.sh SRC OBJ FRAGMENT...
#   SRC       kernel source tree (from source.sh)
#   OBJ       build directory (O=); gets bzImage, headers and .config
#   FRAGMENT  config fragments merged, in order, onto tinyconfig
# env: JOBS (default: nproc), CCACHE_DIR (default: build/ccache)
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

src=$(abspath "$1")
obj=$(abspath "$2")
shift 2
frags=()
for f in "$@"; do frags+=("$(abspath "$f")"); done
top=$PWD
jobs=${JOBS:-$(nproc)}
mkdir -p "$obj" out/build
name=$(basename "$obj")
log=$top/out/build/kernel-$name.log

export CCACHE_DIR=${CCACHE_DIR:-$top/build/ccache}
export CCACHE_BASEDIR=$top/build CCACHE_NOHASHDIR=true
cc="gcc"
command -v ccache >/dev/null && cc="ccache gcc"
kmake() { make -C "$src" O="$obj" CC="$cc" HOSTCC="$cc" "$@"; }

# Configure only when a fragment or the tree changed: a re-run of
# olddefconfig rewrites .config and would make kbuild rebuild everything.
cfgsum=$(cat "${frags[@]}" "$src/.cowlab-base" | md5sum | cut -d' ' -f1)
if [ ! -f "$obj/.config" ] || [ "$(cat "$obj/.cowlab-config" 2>/dev/null)" != "$cfgsum" ]; then
	step "configuring $name: tinyconfig + ${*}"
	run_logged "$log" kmake tinyconfig
	run_logged "$log.merge" "$src/scripts/kconfig/merge_config.sh" -m \
		-O "$obj" "$obj/.config" "${frags[@]}"
	run_logged "$log" kmake olddefconfig
	# Every option a fragment asks for must have survived olddefconfig.
	bad=$(cat "${frags[@]}" | sed -n -e 's/^\(CONFIG_[A-Z0-9_]*\)=\(.*\)$/\1=\2/p' \
		-e 's/^# \(CONFIG_[A-Z0-9_]*\) is not set$/\1=n/p' |
		while IFS='=' read -r sym val; do
			got=$(sed -n -e "s/^$sym=\\(.*\\)$/\\1/p" \
				-e "s/^# $sym is not set$/n/p" "$obj/.config")
			[ -n "$got" ] || got=n
			[ "$got" = "$val" ] || echo "$sym=$val (got $got)"
		done)
	[ -z "$bad" ] || die "config options not applied (unmet dependencies?): $bad" "$log.merge"
	echo "$cfgsum" >"$obj/.cowlab-config"
fi

step "building $name kernel with $jobs jobs (log: $log)"
start=$(date +%s)
# The build log goes to a file; every 250th compiled object is shown as
# progress so a long build never sits silent.
set +e
kmake -j"$jobs" bzImage headers 2>&1 | tee "$log" |
	awk '/^  CC /{n++; if (n % 250 == 0) {printf "    [%s] %d objects, at %s\n", "'"$name"'", n, $2; fflush()}}'
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || die "kernel build of $name failed" "$log"
note "$name built in $(($(date +%s) - start)) s: $obj/arch/x86/boot/bzImage"
