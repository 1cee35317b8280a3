#!/usr/bin/env bash
# Turn the results of a `make run` guest job into the report.
# Usage: report.sh PREFIX REPORT.md
#   PREFIX  the qemu-run.sh output prefix (PREFIX.out, PREFIX.meta)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

prefix=$1 report=$2
res=$prefix.out
[ -f "$res" ] || die "no results $res: did the guest run?"
val() { tr -d '\r' <"$res" | sed -n "s/^$1=//p" | head -n 1; }
accel=$(sed -n 's/.*accel=\([a-z]*\).*/\1/p' "$prefix.meta")
case $accel in
icount) mode="QEMU TCG, -icount shift=0 (1 ns = 1 guest instruction)" ;;
tcg) mode="QEMU TCG (wall-clock guest time)" ;;
kvm) mode="QEMU KVM" ;;
*) mode="QEMU $accel" ;;
esac

{
	echo "# cowlab report"
	echo
	echo "Kernel: $(val version)"
	echo
	echo "Mode: $mode, $(val cpus) CPU(s), $(($(val mem_total_kb) / 1024)) MiB"
	echo
	echo "## Smoke: what the kernel under test offers"
	echo
	echo "| item | value |"
	echo "| --- | --- |"
	echo "| kernel | $(val kernel) |"
	echo "| /init reached after (guest s) | $(val uptime_at_job_s) |"
	echo "| THP enabled | $(val thp_enabled) |"
	echo "| THP sizes | $(val thp_sizes) |"
	tr -d '\r' <"$res" | sed -n 's/^hugetlb_\([0-9]*kB\)=\(.*\)/| hugetlb \1 pages reserved | \2 |/p'
	echo "| swap (KiB) | $(val swap_kb) |"
	tr -d '\r' <"$res" | sed -n 's/^knob_\([a-z_]*\)=\(.*\)/| vm.\1 | \2 |/p'
	tr -d '\r' <"$res" | sed -n 's/^vmstat_\([a-z_]*\)=\(.*\)/| vmstat \1 | \2 |/p'
	echo "| debugfs cow/latency | $(val debugfs_cow_latency) |"
} >"$report"

printf '\n'
cat "$report"
printf '\nreport: %s\n' "$report"
