#!/usr/bin/env bash
# Decide ACCEL=auto: print "kvm" when a short KVM boot of this kernel really
# reaches /init, else "tcg". /dev/kvm alone proves nothing: on nested hosts
# it exists while a normal guest kernel hangs. The answer is cached in
# out/accel-probe/verdict per host kernel and QEMU version.
# Usage: accel-probe.sh KERNEL INITRD
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

kernel=$1 initrd=$2
cache=out/accel-probe/verdict
# Before the per-job folders the cache was the file out/accel-probe.
[ -d out/accel-probe ] || rm -f out/accel-probe
key="$(uname -r) $(qemu-system-x86_64 --version | head -n1)"
if [ -f "$cache" ] && [ "$(sed -n 2p "$cache")" = "$key" ]; then
	sed -n 1p "$cache"
	exit 0
fi

verdict=tcg
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	step "probing KVM with a 20 s test boot" >&2
	if ACCEL=kvm TIMEOUT=20 STREAM=none MEM=512 CPUS=1 \
		"$(dirname "$0")/qemu-run.sh" "$kernel" "$initrd" probe out/accel-probe \
		>/dev/null 2>&1; then
		verdict=kvm
	else
		note "KVM probe boot failed (see out/accel-probe/console.log): using TCG" >&2
	fi
else
	note "no usable /dev/kvm: using TCG" >&2
fi
mkdir -p "$(dirname "$cache")"
printf '%s\n%s\n' "$verdict" "$key" >"$cache"
echo "$verdict"
