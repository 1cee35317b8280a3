#!/usr/bin/env bash
# Run one guest job and decide its verdict; the one place that does: did
# the guest finish (no crash, no hang) and with which exit status, did the
# kernel splat on the console (splat-scan.sh), how many tests passed
# (tap-count.sh).
# Usage: job.sh JOB KERNEL INITRD OUTDIR [HOST_TEST...]
#   JOB        the guest job (initramfs/init: check, kselftest, stress,
#              bench, cmd, trace, ...; shell: an interactive shell instead)
#   OUTDIR     the job's folder (out/JOB/): console.log, results.out and
#              meta (qemu-run.sh), results.tap (the guest's TAP results,
#              then the host's checks, numbered in order), verdict
#   HOST_TEST  a command run after the boot; its TAP lines ("ok - ...")
#              join the job's (make check: the runner self-tests)
# env: as qemu-run.sh; NO_BOOT=1: judge the results already in OUTDIR;
#      GUEST_TESTS: run only the kselftest programs these shell patterns
#      name (PROGRAM or COLLECTION:PROGRAM, space- or comma-separated);
#      GUEST_ARGS: arguments for each program run (e.g. "-t TEST");
#      GUEST_CMD: the command the cmd job runs (make qemu CMD=...)
# Prints the job's top-level results and "N passed, N failed, N skipped"
# when the guest wrote TAP, else one line.
# Exit: 0 when all is well; the guest's exit status when the guest
# finished with one (make qemu CMD=...); else 1.
set -euo pipefail
here=$(dirname "$0")
# shellcheck source=../lib.sh
. "$here/../lib.sh"

job=$1 kernel=$2 initrd=$3 dir=$4
shift 4
[ "$job" = shell ] && exec "$here/qemu-run.sh" "$kernel" "$initrd" shell "$dir"
APPEND=${APPEND:-}
res=$dir/results.out
log=$dir/console.log
tap=$dir/results.tap
host=$dir/host.tap
mkdir -p "$dir"

# What the guest job reads from the kernel command line (initramfs/tap.sh,
# guest.sh); base64 keeps spaces and quotes in one word.
b64() { printf '%s' "$1" | base64 -w0; }
[ -z "${GUEST_TESTS:-}" ] || APPEND+=" cowlab.tests=$(printf '%s' "$GUEST_TESTS" | tr -s ' ' ,)"
[ -z "${GUEST_ARGS:-}" ] || APPEND+=" cowlab.args=$(b64 "$GUEST_ARGS")"
[ -z "${GUEST_CMD:-}" ] || APPEND+=" cowlab.cmd=$(b64 "$GUEST_CMD")"
# The kernel keeps 2048 bytes of command line; qemu-run.sh adds ~200.
[ "${#APPEND}" -le 1700 ] || die "the guest command line would be too long (${#APPEND} bytes of APPEND): shorten CMD= / TEST_ARGS="
export APPEND

finished=yes
if [ "${NO_BOOT:-0}" = 1 ]; then
	[ -f "$res" ] || die "NO_BOOT=1: no results $res"
	grep -q "^cowlab-done job=$job " "$res" || finished=no
else
	rm -f "$res" "$log" "$tap" "$dir/verdict"
	"$here/qemu-run.sh" "$kernel" "$initrd" "$job" "$dir" || finished=no
fi
[ -f "$res" ] || die "job '$job' did not boot (the error above)"
grc=$(tr -d '\r' <"$res" | sed -n "s/^cowlab-done job=$job rc=\([0-9]*\).*/\1/p" | tail -n 1)
is_tap=no
grep -q '^TAP version' "$res" && is_tap=yes

{
	if [ "$finished" = no ]; then
		echo "not ok - guest: job '$job' did not finish (crash or hang, see $log)"
	elif [ "$grc" != 0 ]; then
		echo "not ok - guest: job '$job' exited $grc"
	else
		echo "ok - guest: job '$job' finished"
	fi
	if splats=$("$here/splat-scan.sh" "$log"); then
		nsplat=0
		echo "ok - console: no kernel splats in $log"
	else
		nsplat=$(printf '%s\n' "$splats" | wc -l)
		printf '%s\n' "$splats" | head -n 40 | sed 's/^/# /'
		echo "not ok - console: $nsplat splat line(s) in $log"
	fi
	echo "$nsplat" >"$dir/splats"
} >"$host"
nsplat=$(cat "$dir/splats")
rm -f "$dir/splats"
if [ $# -gt 0 ]; then
	"$@" | tee "$dir/host-tests.txt"
	grep -E '^(ok|not ok|#)' "$dir/host-tests.txt" >>"$host" || true
fi

# One TAP stream: the guest's results (from its "TAP version" line on,
# without its plan and result lines), then the host's, numbered in order.
{
	echo "TAP version 13"
	if [ "$is_tap" = yes ]; then
		tr -d '\r' <"$res" | awk '/^TAP version/ { on = 1; next }
			on && !/^(1\.\.[0-9]+$|cowlab-done |r |p )/'
	fi
	cat "$host"
} | awk '
	/^(ok|not ok)/ {
		n++
		if (sub(/^not ok( [0-9]+| -)?/, "")) $0 = "not ok " n $0
		else { sub(/^ok( [0-9]+| -)?/, ""); $0 = "ok " n $0 }
	}
	{ print }
	END { print "1.." n }' >"$tap"
rm -f "$host"

counts=$("$here/tap-count.sh" "$tap")
verdict=pass
case $counts in *" 0 failed"*) ;; *) verdict=fail ;; esac
printf 'job=%s\nfinished=%s\nguest_rc=%s\nsplats=%s\ntap=%s\ncounts=%s\nverdict=%s\n' \
	"$job" "$finished" "${grc:--}" "$nsplat" "$is_tap" "$counts" "$verdict" >"$dir/verdict"

if [ "$is_tap" = yes ]; then
	printf '\n'
	grep -E '^(ok|not ok) ' "$tap"
	printf '\nTAP: %s, console: %s\n%s\n' "$tap" "$log" "$counts"
elif [ "$verdict" = pass ]; then
	note "job '$job': finished, exit 0, no kernel splats ($dir)"
else
	grep -E '^(not ok|#) ' "$tap" >&2
fi
[ "$verdict" = pass ] && exit 0
printf 'error: job %s failed: see %s\n' "$job" "$tap" >&2
[ "$finished" = yes ] && [ -n "$grc" ] && [ "$grc" != 0 ] && exit "$grc"
exit 1
