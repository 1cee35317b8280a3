#!/usr/bin/env bash
# make run's boots: the series once with the whole suite and twice more
# with table F alone, the stock kernel three times with F alone. Guest
# times differ by a few percent from boot to boot even under -icount, so
# F compares medians over all boots, not single runs.
# Usage: run-bench.sh SERIES_BZIMAGE STOCK_BZIMAGE INITRD
# Writes out/run.out (+.log, .meta), out/run-f-series.out, out/run-f-stock.out.
# env: as qemu-run.sh; ACCEL_FALLBACK defaults to icount here.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

series=$1 stock=$2 initrd=$3
here=$(dirname "$0")
export ACCEL_FALLBACK=${ACCEL_FALLBACK:-icount}
boots=3

# boot KERNEL JOB PREFIX: one boot; a boot that hangs or crashes is tried
# once more (an early-boot stall seen here now and then under -icount, on
# the stock kernel too), its log kept as PREFIX.failed.log.
boot() {
	if "$here/qemu-run.sh" "$1" "$initrd" "$2" "$3"; then
		return 0
	fi
	cp "$3.log" "$3.failed.log" 2>/dev/null || true
	note "boot for $3 failed (log: $3.failed.log); trying once more"
	"$here/qemu-run.sh" "$1" "$initrd" "$2" "$3" ||
		die "benchmark boot failed twice" "$3.log"
}

# The whole suite runs in this boot: give it three times as long.
TIMEOUT=$((${TIMEOUT:-120} * 3)) boot "$series" bench out/run
for i in $(seq 2 $boots); do
	boot "$series" benchf "out/run-series$i"
done
for i in $(seq 1 $boots); do
	boot "$stock" benchf "out/run-stock$i"
done
cp out/run-stock1.meta out/run-stock.meta
tr -d '\r' <out/run-stock1.out >out/run-stock.out
{
	tr -d '\r' <out/run.out
	for i in $(seq 2 $boots); do tr -d '\r' <"out/run-series$i.out"; done
} | grep '^r table=F' >out/run-f-series.out
for i in $(seq 1 $boots); do tr -d '\r' <"out/run-stock$i.out"; done |
	grep '^r table=F' >out/run-f-stock.out
note "table F: $(wc -l <out/run-f-series.out) series and $(wc -l <out/run-f-stock.out) stock samples over $boots boots each"
