#!/usr/bin/env bash
# make run's boots, each a job.sh job: the series once with the whole suite
# and twice more with table F alone, the stock kernel three times with F
# alone. Guest times differ by a few percent from boot to boot even under
# -icount, so F compares medians over all boots, not single runs.
# Usage: run-bench.sh SERIES_BZIMAGE STOCK_BZIMAGE INITRD OUTDIR
# Writes OUTDIR/bench/ (the whole suite), OUTDIR/series2/ ..., OUTDIR/stock1/
# ... (job.sh's folders), OUTDIR/f-series.out and OUTDIR/f-stock.out
# (table F's samples over all boots).
# env: as qemu-run.sh; ACCEL_FALLBACK defaults to icount here.
set -euo pipefail
here=$(dirname "$0")
# shellcheck source=../lib.sh
. "$here/../lib.sh"

series=$1 stock=$2 initrd=$3 dir=$4
export ACCEL_FALLBACK=${ACCEL_FALLBACK:-icount} STREAM=progress
boots=3

# boot KERNEL JOB NAME: one boot into DIR/NAME; a boot that hangs or
# crashes is tried once more (an early-boot stall seen here now and then
# under -icount, on the stock kernel too), its console kept as
# DIR/NAME/failed-console.log. A kernel splat fails at once.
boot() {
	local d=$dir/$3
	"$here/job.sh" "$2" "$1" "$initrd" "$d" && return 0
	[ "$(sed -n 's/^finished=//p' "$d/verdict" 2>/dev/null)" = no ] ||
		die "benchmark boot $d failed" "$d/results.tap"
	cp "$d/console.log" "$d.failed-console.log" 2>/dev/null || true
	note "boot $d did not finish (console: $d.failed-console.log); trying once more"
	"$here/job.sh" "$2" "$1" "$initrd" "$d" ||
		die "benchmark boot failed twice" "$d/console.log"
}

mkdir -p "$dir"
rm -f "$dir"/*.failed-console.log
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
