#!/usr/bin/env bash
# make run's boots, each a job.sh job: the series once with the whole suite
# and twice more with table F alone, the stock kernel three times with F
# alone. Guest times differ by a few percent from boot to boot even under
# -icount, so F compares medians over all boots, not single runs. Then,
# unless the suite ran under KVM, the series MTTCG_BOOTS times under
# multi-threaded TCG with tables E and G alone (job benchmt): single-
# threaded TCG (and -icount) runs the vCPUs in turns, so a thread waiting
# for another CPU (a TLB-shootdown IPI, the background settling) waits for
# its turn; under MTTCG both vCPUs run at once, timed by the wall clock.
# Usage: run-bench.sh SERIES_BZIMAGE STOCK_BZIMAGE INITRD OUTDIR
# Writes OUTDIR/bench/ (the whole suite), OUTDIR/series2/ ..., OUTDIR/stock1/
# ..., OUTDIR/mttcg1/ ... (job.sh's folders), OUTDIR/f-series.out and
# OUTDIR/f-stock.out (table F's samples over all boots), OUTDIR/failures
# (the boots whose benchmarks failed, if any).
# env: as qemu-run.sh; ACCEL_FALLBACK defaults to icount here;
#      MTTCG_BOOTS (3; 0: none).
set -euo pipefail
here=$(dirname "$0")
# shellcheck source=../lib.sh
. "$here/../lib.sh"

series=$1 stock=$2 initrd=$3 dir=$4
export ACCEL_FALLBACK=${ACCEL_FALLBACK:-icount} STREAM=progress
boots=3
mttcg_boots=${MTTCG_BOOTS:-3}

# stall_only LOG: the only splat in LOG is an RCU stall report: the
# early-boot stall below, when it ends before the timeout (a vCPU's IPI
# left waiting while the guest's clock ran on, ~21 s of it).
stall_only() {
	local s
	s=$("$here/splat-scan.sh" "$1") && return 1
	! grep -qv 'rcu: INFO: rcu_[a-z]* detected stalls' <<<"$s"
}

# boot KERNEL JOB NAME: one boot into DIR/NAME; a boot that hangs or
# crashes, or only reports an RCU stall, is tried once more (an early-boot
# stall seen here now and then under -icount, on the stock kernel only so
# far), its console kept as DIR/NAME.failed-console.log. Any other kernel
# splat fails at once. A guest that
# finished, without a splat, but exited non-zero (a benchmark failed, e.g.
# an image that differs from its source: its result lines say error=) is
# listed in DIR/failures, for the report to show and fail on.
boot() {
	local d=$dir/$3
	"$here/job.sh" "$2" "$1" "$initrd" "$d" && return 0
	if [ "$(sed -n 's/^finished=//p' "$d/verdict" 2>/dev/null)" = yes ] &&
		[ "$(sed -n 's/^splats=//p' "$d/verdict")" = 0 ]; then
		echo "$3: guest exited $(sed -n 's/^guest_rc=//p' "$d/verdict"): $(awk '/^# / { sub(/\r$/, ""); print substr($0, 3); exit }' "$d/results.out")" >>"$dir/failures"
		note "boot $d: a benchmark failed (listed in $dir/failures); going on"
		return 0
	fi
	if [ "$(sed -n 's/^finished=//p' "$d/verdict" 2>/dev/null)" = no ]; then
		note "boot $d did not finish (console: $d.failed-console.log); trying once more"
	elif stall_only "$d/console.log"; then
		note "boot $d reported an RCU stall after /init (console: $d.failed-console.log); trying once more"
	else
		die "benchmark boot $d failed" "$d/results.tap"
	fi
	cp "$d/console.log" "$d.failed-console.log" 2>/dev/null || true
	"$here/job.sh" "$2" "$1" "$initrd" "$d" ||
		die "benchmark boot failed twice" "$d/console.log"
}

mkdir -p "$dir"
rm -rf "$dir"/*.failed-console.log "$dir"/mttcg[0-9]* "$dir/failures"
# The whole suite runs in this boot: give it three times as long.
TIMEOUT=$((${TIMEOUT:-120} * 3)) boot "$series" bench bench
for i in $(seq 2 $boots); do
	boot "$series" benchf "series$i"
done
for i in $(seq 1 $boots); do
	boot "$stock" benchf "stock$i"
done
{
	tr -d '\r' <"$dir/bench/results.out"
	for i in $(seq 2 $boots); do tr -d '\r' <"$dir/series$i/results.out"; done
} | grep '^r table=F' >"$dir/f-series.out"
for i in $(seq 1 $boots); do tr -d '\r' <"$dir/stock$i/results.out"; done |
	grep '^r table=F' >"$dir/f-stock.out"
note "table F: $(wc -l <"$dir/f-series.out") series and $(wc -l <"$dir/f-stock.out") stock samples over $boots boots each"

# Under KVM the suite's own numbers are already parallel hardware time.
if [ "$(sed -n 's/^accel=\([a-z]*\).*/\1/p' "$dir/bench/meta")" = kvm ]; then
	note "tables E and G ran under KVM: no multi-threaded TCG boots"
	exit 0
fi
# Wall-clock TCG is slower than -icount's guest time suggests: as the
# suite's boot, three times the timeout.
for i in $(seq 1 "$mttcg_boots"); do
	ACCEL=mttcg TIMEOUT=$((${TIMEOUT:-120} * 3)) boot "$series" benchmt "mttcg$i"
done
