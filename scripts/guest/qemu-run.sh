#!/usr/bin/env bash
# Boot a kernel + initramfs in QEMU for one guest job (the boot layer of
# scripts/guest/job.sh, which judges the results).
# Usage: qemu-run.sh KERNEL INITRD JOB OUTDIR
#   writes OUTDIR/console.log (guest console), OUTDIR/results.out (results
#   channel), OUTDIR/qemu.log (QEMU's own output), OUTDIR/meta
# env: ACCEL=auto|kvm|tcg|icount|mttcg (auto: KVM if a probe boot works,
#      else TCG; mttcg: multi-threaded TCG, for the jobs that switch no
#      static key)
#      ACCEL_FALLBACK (what auto uses without KVM: tcg, or icount for
#      benchmarks), CPUS (2), MEM (MiB, 6144), TIMEOUT (s, 1500),
#      APPEND (extra cmdline), TCG_CPU (the TCG CPU model),
#      STREAM=tap|progress|all|none: what of the results channel to print
#      as it arrives (tap: top-level results, failing sub-tests and "p "
#      progress lines; progress: only those; all: every line)
# JOB=shell: an interactive shell on the console instead.
# Exit: 0 when the guest finished its job, 1 when it crashed, hung or
# never reached /init (the console log is named).
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

kernel=$1 initrd=$2 job=$3 dir=$4
cpus=${CPUS:-2}
mem=${MEM:-6144}
timeout_s=${TIMEOUT:-1500}
accel=${ACCEL:-auto}
log=$dir/console.log
res=$dir/results.out
[ -f "$kernel" ] || die "no kernel image $kernel"
[ -f "$initrd" ] || die "no initramfs $initrd"
mkdir -p "$dir"

if [ "$accel" = auto ]; then
	accel=$("$(dirname "$0")/accel-probe.sh" "$kernel" "$initrd")
	# Benchmarks ask for instruction-counted time (ACCEL_FALLBACK=icount).
	[ "$accel" = tcg ] && accel=${ACCEL_FALLBACK:-tcg}
fi

args=(-nodefaults -no-user-config -machine pc -display none -no-reboot
	-m "$mem" -smp "$cpus" -kernel "$kernel" -initrd "$initrd")
# TCG CPU model: qemu64 plus 1 GiB pages. "-cpu max" advertises the
# fast-string features, and TCG emulates the kernel's rep-movs page copy
# ~10x slower than the plain copy loop (a 1 GiB COW copy: 32 s vs 3.3 s).
# TCG is single-threaded (the vCPUs take turns on one host thread) but
# for ACCEL=mttcg: with thread=multi a vCPU can run a stale int3 while
# another patches kernel text (text_poke_bp; an "Oops: int3" in
# enqueue_timer seen here), and the COW knobs switch static keys. So an
# mttcg guest is told to freeze them (cowlab.keys=frozen: it runs only
# the jobs that switch none, initramfs/knobs.sh; a non-default value goes
# on the command line as sysctl.vm.KNOB=N), and its TSC is declared
# reliable, so that a clocksource watchdog verdict under host load cannot
# mark it unstable, which switches a static key at run time.
tcg_cpu=${TCG_CPU:-qemu64,+pdpe1gb}
keys=""
case $accel in
kvm) args+=(-accel kvm -cpu host) ;;
tcg) args+=(-accel "tcg,thread=single" -cpu "$tcg_cpu") ;;
icount) args+=(-accel tcg -cpu "$tcg_cpu" -icount "shift=0,sleep=off") ;;
mttcg)
	args+=(-accel "tcg,thread=multi" -cpu "$tcg_cpu")
	keys="cowlab.keys=frozen tsc=reliable"
	;;
*) die "ACCEL=$accel: use auto, kvm, tcg, icount or mttcg" ;;
esac

# 1 GiB hugetlb pages can only be reserved reliably at boot; take two (the
# COW tests need a second page for the copy) when memory allows. The PCI
# hole leaves no two free aligned GiBs below 6 GiB of guest RAM.
huge=""
[ "$mem" -ge 6144 ] && huge="hugepagesz=1G hugepages=2"
cmdline="console=ttyS0 panic=-1 loglevel=7 brd.rd_nr=1 brd.rd_size=262144 numa=fake=2"
cmdline+=" hugepagesz=2M hugepages=16${huge:+ $huge}${keys:+ $keys} cowlab.job=$job${APPEND:+ $APPEND}"

if [ "$job" = shell ]; then
	step "QEMU ($accel, $cpus CPUs, $mem MiB): interactive shell, Ctrl-A X quits"
	exec qemu-system-x86_64 "${args[@]}" -append "$cmdline" \
		-serial mon:stdio -serial "file:$res"
fi

step "booting QEMU ($accel, $cpus CPUs, $mem MiB) for job '$job', timeout ${timeout_s}s"
note "console: $log, results: $res"
rm -f "$log" "$res"
: >"$res"
start=$(date +%s)
timeout -k 10 "$timeout_s" qemu-system-x86_64 "${args[@]}" -append "$cmdline" \
	-serial "file:$log" -serial "file:$res" </dev/null >"$dir/qemu.log" 2>&1 &
qpid=$!
case ${STREAM:-tap} in
tap) filter='s/^p /    /p; /^(ok|not ok|# not ok)/p' ;;
progress) filter='s/^p /    /p' ;;
all) filter='/^cowlab-done /d; p' ;;
none) filter='' ;;
*) die "STREAM=$STREAM: use tap, progress, all or none" ;;
esac
if [ -n "$filter" ]; then
	tail -n +1 -s 1 -f --pid="$qpid" "$res" 2>/dev/null |
		sed -u -n -E "s/\r$//; $filter" || true
fi
rc=0
wait "$qpid" || rc=$?
el=$(($(date +%s) - start))
echo "accel=$accel elapsed_s=$el qemu_rc=$rc" >"$dir/meta"

if grep -q "^cowlab-done job=$job " "$res" 2>/dev/null; then
	note "guest finished job '$job' in ${el}s ($accel)"
	exit 0
fi
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	why="guest hung: killed after the ${timeout_s}s timeout"
elif grep -q 'Kernel panic' "$log" 2>/dev/null; then
	why="guest kernel panicked: $(grep -m1 'Kernel panic' "$log" | tr -d '\r')"
elif [ "$rc" -ne 0 ]; then
	why="QEMU failed (exit $rc): $(head -c 300 "$dir/qemu.log")"
else
	why="guest stopped before finishing job '$job'"
fi
printf 'error: %s\nerror: console log: %s\n' "$why" "$log" >&2
tail -n 15 "$log" 2>/dev/null | tr -d '\r' | sed 's/^/    | /' >&2
exit 1
