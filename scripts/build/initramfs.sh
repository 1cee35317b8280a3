#!/usr/bin/env bash
# Pack the guest initramfs: busybox, /init, and staged programs.
# Usage: initramfs.sh GEN_INIT_CPIO OUT.cpio [GUESTDIR:STAGEDIR]...
#   GEN_INIT_CPIO  usr/gen_init_cpio from a kernel build
#   GUESTDIR:STAGEDIR  copy the host tree STAGEDIR to GUESTDIR in the guest
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

gen=$1 out=$2
shift 2
[ -x "$gen" ] || die "$gen missing: build the kernel first"
export COWLAB_TOP=$PWD
BUSYBOX=$(command -v busybox) || die "busybox missing: run scripts/build/deps.sh"
export BUSYBOX

list=$out.list
{
	cat initramfs/files.list
	for a in $("$BUSYBOX" --list-full); do
		[ "$a" = bin/busybox ] || [ "$a" = linuxrc ] && continue
		echo "slink /$a /bin/busybox 0777 0 0"
	done
	for map in "$@"; do
		guest=${map%%:*} stage=${map#*:}
		[ -d "$stage" ] || continue
		echo "dir $guest 0755 0 0"
		(cd "$stage" && find . -mindepth 1 | sort) | while read -r f; do
			p=$stage/${f#./}
			if [ -d "$p" ]; then
				echo "dir $guest/${f#./} 0755 0 0"
			else
				echo "file $guest/${f#./} $(abspath "$p") $(stat -c %a "$p") 0 0"
			fi
		done
	done
} >"$list"
"$gen" "$list" >"$out.tmp" || die "gen_init_cpio failed on $list"
mv "$out.tmp" "$out"
note "initramfs $out: $(($(stat -c %s "$out") / 1024)) KiB"
