#!/usr/bin/env bash
# Turn the results of the `make run` guest jobs into the report: the smoke
# facts, then tables A-G, each by its own script (named by subject).
# Usage: report.sh RUNDIR REPORT.md
#   RUNDIR  run-bench.sh's folder (bench/, stock1/, mttcg1/, f-*.out); the plots
#           and their data go there too
# Writes REPORT.md; prints it. Exit 1 (after writing it) when RUNDIR/failures
# lists boots whose benchmarks failed.
set -euo pipefail
here=$(dirname "$0")
# shellcheck source=../lib.sh
. "$here/../lib.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"

rundir=$1 report=$2
series=$rundir/bench
for d in "$series" "$rundir/stock1"; do
	[ -f "$d/results.out" ] || die "no results $d/results.out: did the guest run?"
done
rel=$(realpath -m --relative-to="$(dirname "$report")" "$rundir")

# smoke_label KEY: the smoke table's name for a fact (initramfs/smoke.sh),
# empty for the facts the report's header shows.
smoke_label() {
	case $1 in
	version | cpus | mem_total_kb) ;;
	uptime_at_job_s) echo "/init reached after (guest s)" ;;
	thp_enabled) echo "THP enabled" ;;
	thp_sizes) echo "THP sizes" ;;
	swap_kb) echo "swap (KiB)" ;;
	hugetlb_*) echo "hugetlb ${1#hugetlb_} pages reserved" ;;
	knob_*) echo "vm.${1#knob_}" ;;
	vmstat_*) echo "vmstat ${1#vmstat_}" ;;
	debugfs_cow_latency) echo "debugfs cow/latency" ;;
	*) echo "$1" ;;
	esac
}

{
	echo "# cowlab report"
	echo
	echo "Kernel under test: $(val "$series" version)"
	echo
	echo "Mode: $(mode_of "$series"); $(val "$series" cpus) vCPUs, $(($(val "$series" mem_total_kb) / 1024)) MiB."
	echo
	nmt=$(mttcg_dirs "$rundir" | wc -l)
	if [ -s "$rundir/failures" ]; then
		echo "**Benchmarks failed** ($rel/failures; their rows say error= or verified NO):"
		echo
		sed 's/^/- /' "$rundir/failures"
		echo
	fi
	if [ "$nmt" -gt 0 ]; then
		echo "Tables E and G also ran in $nmt boot(s) under multi-threaded TCG (wall clock; $rel/mttcg*/), shown beside the -icount numbers as their medians; each table says which of its numbers transfer to hardware."
		echo
	fi
	echo "## Smoke: what the kernel under test offers"
	echo
	echo "| item | value |"
	echo "| --- | --- |"
	# The facts: the KEY=VALUE lines the job starts with.
	# awk reads the file itself: an early exit at the end of a pipe would
	# be a SIGPIPE failure under pipefail (lib.sh).
	awk '{ sub(/\r$/, "") } !/^[A-Za-z0-9_]+=/ { exit } { print }' "$series/results.out" |
		while IFS='=' read -r key value; do
			label=$(smoke_label "$key")
			[ -z "$label" ] || echo "| $label | $value |"
		done
	echo

	if [ -z "$(get "$series" per_fault_ns table=F sample=0)" ]; then
		echo "The kernel under test has no COW instrumentation: tables A to G need the series."
	else
		"$here/fault-anatomy.sh" "$rundir" "$rel"
		"$here/page-size.sh" "$rundir" "$rel"
		"$here/precopy.sh" "$rundir" "$rel"
		"$here/thp-modes.sh" "$rundir" "$rel"
		"$here/snapshot-cost.sh" "$rundir" "$rel"
		"$here/writer-stall.sh" "$rundir" "$rel"
		"$here/overhead.sh" "$rundir"
	fi
} >"$report"

printf '\n'
cat "$report"
printf '\nreport: %s\n' "$report"
[ ! -s "$rundir/failures" ] || die "benchmarks failed: $(wc -l <"$rundir/failures") boot(s), see $rundir/failures"
