#!/usr/bin/env bash
# Table E of the report, snapshot cost: cow_snapshot() of a range,
# asynchronous and eager, against fork() and mmap + memcpy of it, from the
# guest's "r table=E" lines (the sizes and backings the guest ran): the
# -icount boot's (RUNDIR/bench) and, where make run had them, the medians
# of the multi-threaded TCG boots' (RUNDIR/mttcg*).
# Usage: snapshot-cost.sh RUNDIR REL
#   RUNDIR  make run's folder
#   REL     RUNDIR as the report names it, for its plots
# Prints the tables (markdown); writes RUNDIR/table-e.dat and table-e.png
# (and table-e-mttcg.*).
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rundir=$1 rel=$2
run=$rundir/bench outdir=$rundir
kernel=$(val "$run" kernel)
mode=$(mode_of "$run")
sizes=$(values "$run" size_mib table=E)
backings=$(values "$run" backing table=E)
mt=$(mttcg_dirs "$rundir" | tr '\n' ' ')
nmt=$(wc -w <<<"$mt")

# e DIRS KEY SIZE BACKING: KEY of the table E line of that region (the
# median over DIRS).
e() { med_get "$1" "$2" table=E "size_mib=$3" "backing=$4"; }

# mem DIRS NAME SIZE BACKING [PREFIX]: "extra KiB (page tables KiB)".
mem() {
	local x p
	x=$(e "$1" "${2}_${5:-}extra_kb" "$3" "$4")
	p=$(e "$1" "${2}_${5:-}pt_kb" "$3" "$4")
	if [ -z "$x" ]; then echo "-"; else echo "$x ($(or_dash "$p"))"; fi
}

# pct_of KIB SIZE_MIB [DECIMALS]: KIB as a percentage of SIZE_MIB.
pct_of() { awk -v a="$1" -v m="$2" -v d="${3:-2}" 'BEGIN { if (a == "" || m == 0) print "-"; else printf "%." d "f\n", a * 100 / (m * 1024) }'; }

# why_none DIRS SIZE BACKING: why a region has no result, or empty.
why_none() { why_no_result e fork_ns "$@"; }

# notes DIRS SIZE BACKING: what the row's numbers need said.
notes() {
	local n="" v
	add() { n="$n${n:+; }$1"; }
	v=$(e "$1" async_skipped "$2" "$3") && [ -n "$v" ] && add "async skipped: ${v//+/ }"
	v=$(e "$1" async_unsettled_pmds "$2" "$3") && [ -n "$v" ] && add "async: $v PMDs still pending after 30 s"
	v=$(e "$1" async_settle_polls "$2" "$3")
	[ "${v:-1}" -gt 1 ] && add "async settled: $v readings of /proc/vmstat, $(usec "$(e "$1" async_settle_poll_ns "$2" "$3")") us of them"
	v=$(e "$1" eager_skipped "$2" "$3") && [ -n "$v" ] && add "eager skipped: ${v//+/ }"
	[ "$(e "$1" eager_flags "$2" "$3")" = 0 ] && add "eager = flags 0 (the kernel's only mode)"
	v=$(e "$1" eager_pending_after_call "$2" "$3") && [ -n "$v" ] && add "eager left $v PMDs pending"
	v=$(e "$1" fork4x_skipped "$2" "$3") && [ -n "$v" ] && add "fork +4x skipped: ${v//+/ }"
	v=$(e "$1" error "$2" "$3") && [ -n "$v" ] && add "error: ${v//+/ }"
	[ -n "$(e "$1" emulated "$2" "$3")" ] && add "cow_snapshot emulated (test build)"
	echo "${n:--}"
}

# time_table DIRS DAT: the times of every region, the plot's data to DAT.
time_table() {
	local d=$1 dat=$2 s b why an as ad en fk f4 mc
	echo "| size | backing | THP-backed | async: call | async: settled | async: PMDs deferred | eager: call | fork | fork +4x | mmap + memcpy | async / fork | eager / fork | async / memcpy | eager / memcpy | notes |"
	echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
	: >"$dat"
	for s in $sizes; do
		for b in $backings; do
			why=$(why_none "$d" "$s" "$b")
			if [ -n "$why" ]; then
				echo "| $s MiB | $b | ${why//+/ } | | | | | | | | | | | | |"
				continue
			fi
			an=$(e "$d" async_ns "$s" "$b")
			as=$(e "$d" async_settle_ns "$s" "$b")
			ad=$(e "$d" async_deferred_pmds "$s" "$b")
			en=$(e "$d" eager_ns "$s" "$b")
			fk=$(e "$d" fork_ns "$s" "$b")
			f4=$(e "$d" fork4x_ns "$s" "$b")
			mc=$(e "$d" memcpy_ns "$s" "$b")
			echo "| $s MiB | $b | $(pct_of "$(e "$d" thp_kb "$s" "$b")" "$s" 0)% | $(usec "$an") | $(usec "$as") | $(or_dash "$ad") | $(usec "$en") | $(usec "$fk") | $(usec "$f4") | $(usec "$mc") | $(ratio "$an" "$fk") | $(ratio "$en" "$fk") | $(ratio "$an" "$mc") | $(ratio "$en" "$mc") | $(notes "$d" "$s" "$b") |"
			printf '"%s MiB %s" %s %s %s %s %s %s\n' "$s" "$b" "$(usec "$an")" \
				"$(usec "$as")" "$(usec "$en")" "$(usec "$fk")" \
				"$(usec "$f4")" "$(usec "$mc")" >>"$dat"
		done
	done
	echo
}

# targets DIRS: the issue's time targets, from that table's numbers.
targets() {
	local d=$1 an en fk mc r_af r_ef r_am r_em r_th r_the
	an=$(e "$d" async_ns 256 4k)
	en=$(e "$d" eager_ns 256 4k)
	fk=$(e "$d" fork_ns 256 4k)
	mc=$(e "$d" memcpy_ns 256 4k)
	r_af=$(ratio "$an" "$fk")
	r_ef=$(ratio "$en" "$fk")
	r_am=$(ratio "$an" "$mc")
	r_em=$(ratio "$en" "$mc")
	r_th=$(ratio "$(e "$d" memcpy_ns 256 thp)" "$(e "$d" async_ns 256 thp)")
	r_the=$(ratio "$(e "$d" memcpy_ns 256 thp)" "$(e "$d" eager_ns 256 thp)")
	echo "- asynchronous cow_snapshot(256 MiB, 4k) call <= 1/50 of fork() of the range-only process: $(unit "$r_af" x), $(verdict "$r_af" le 0.02);"
	echo "- eager cow_snapshot(256 MiB, 4k) <= 1.0x that fork(): $(unit "$r_ef" x), $(verdict "$r_ef" le 1.0);"
	echo "- cow_snapshot(256 MiB, 4k) <= 1/10 of mmap + memcpy: asynchronous $(unit "$r_am" x), $(verdict "$r_am" le 0.1); eager $(unit "$r_em" x), $(verdict "$r_em" le 0.1);"
	echo "- THP-backed (256 MiB) >= 50x faster than mmap + memcpy: asynchronous $(unit "$r_th" x), $(verdict "$r_th" ge 50); eager $(unit "$r_the" x), $(verdict "$r_the" ge 50)."
}

# plot DAT PNG TITLE_MODE YLABEL: the time table as clustered bars.
plot() {
	local dat=$1 png=$2 tmode=$3 ylabel=$4 p="" col name
	[ -s "$dat" ] || return 0
	command -v gnuplot >/dev/null || return 0
	# A series only where it has values.
	for col in 2:async 3:async-settled 4:eager 5:fork 6:fork-4x 7:memcpy; do
		awk -v c="${col%%:*}" '{ n = split($0, f, "\" ") } f[2] != "" { split(f[2], v, " "); if (v[c - 1] != "-") found = 1 } END { exit !found }' "$dat" || continue
		case ${col#*:} in
		async) name="cow_snapshot async: call" ;;
		async-settled) name="cow_snapshot async: settled" ;;
		eager) name="cow_snapshot eager" ;;
		fork) name="fork (range only)" ;;
		fork-4x) name="fork (+4x memory)" ;;
		memcpy) name="mmap + memcpy" ;;
		esac
		p="$p${p:+, }\"$dat\" using ${col%%:*}:xtic(1) title \"$name\""
	done
	[ -n "$p" ] || return 0
	gnuplot <<EOF >&2 || note "gnuplot failed: no $png" >&2
set terminal png size 1100,500 noenhanced
set output "$png"
set title "Copying a range: cow_snapshot() vs fork() vs mmap + memcpy ($kernel, $tmode)"
set logscale y
set ylabel "$ylabel, log scale"
set datafile missing "-"
set style data histograms
set style histogram clustered
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top left
set grid ytics
set xtics rotate by -30
plot $p
EOF
}

echo "## E. cow_snapshot() (asynchronous, eager) vs fork() vs mmap + memcpy"
echo
# The guest's one line when the kernel has no cow_snapshot().
gskip=$(awk '{ sub(/\r$/, "") } /^r table=E skipped=/ { print substr($3, 9); exit }' "$run/results.out")
if [ -n "$gskip" ]; then
	echo "Skipped: ${gskip//+/ }."
	echo
	exit 0
fi
echo "Kernel $kernel. A populated private anonymous region of each size (4k: MADV_NOHUGEPAGE; thp: 2 MiB aligned, MADV_HUGEPAGE; THP-backed: smaps AnonHugePages), written all over before each run. cow_snapshot async: the default call (it write-protects the source's PMD entries, one per 2 MiB page table fully inside the range, and returns; those 2 MiB are settled later: by the first fault under them, before an operation on the ranges, or by the background worker); call: until it returns; settled: from the call until /proc/vmstat shows no PMD pending (deferred - settled by fault, operation or worker - dropped), polled by a sleeping thread at 1/64 of the time so far (at least 20 us), so up to that late; PMDs deferred: by the call. cow_snapshot eager: COW_SNAPSHOT_EAGER, every page table copied in the call. fork: fork() of a process holding only the region, until it returns in the parent; fork +4x: the same with 4 x the size more populated memory (same backing) in the process; mmap + memcpy: a new mapping of the same backing and a copy into it. Eager, fork and memcpy are complete when they return. Each time is the median of $(or_dash "$(e "$run" reps 256 4k)") runs (1 run from 1 GiB on)."
echo
echo "What transfers to hardware: under -icount the times count guest instructions, so the ratios (async / fork, eager / fork, / memcpy) are ratios of work, the nearest these runs come to hardware ratios (not of cycles: a cache or TLB miss costs no guest time there). Under -icount the vCPUs take turns on one host thread, so the async settle time is the worker's instructions plus whatever else ran meanwhile. The multi-threaded TCG boots run the vCPUs at once, so the worker settles on one vCPU while the caller goes on: their wall-clock medians show that cross-CPU behaviour, but their absolute us are emulation speed with host noise; compare their ratios. The memory is exact in both and is shown once, from the -icount boot."
echo
echo "### E.1 Time under -icount"
echo
echo "Mode: $mode. Units: us (guest)."
echo
time_table "$run" "$outdir/table-e.dat"
echo "Targets (benchmark, not test), -icount:"
targets "$run"
echo
if [ "$nmt" -gt 0 ]; then
	echo "### E.2 Time under multi-threaded TCG"
	echo
	echo "Mode: $(mode_of "${mt%% *}"); $(val "${mt%% *}" cpus) vCPUs. Units: us (wall clock), the median of $nmt boots."
	echo
	time_table "$mt" "$outdir/table-e-mttcg.dat"
	echo "Targets (benchmark, not test), multi-threaded TCG:"
	targets "$mt"
	echo
else
	rm -f "$outdir/table-e-mttcg.dat" "$outdir/table-e-mttcg.png"
	echo "### E.2 Time under multi-threaded TCG: not run (MTTCG_BOOTS=0, or the suite ran under KVM)."
	echo
fi

echo "### E.3 Memory"
echo
echo "From the -icount boot. Units: KiB."
echo
echo "Extra memory: growth of AnonPages + PageTables + KernelStack + Slab in /proc/meminfo while the snapshot, the child or the copy exists (vm.stat_refresh first), with the page tables alone (PageTables growth) in parentheses. Async at the call: a call with the background worker paused (debugfs cow_snapshot/pause), measured at once, before anything settles; async settled: once nothing is pending. RSS: VmRSS growth of the process (fork: the child's VmRSS), which counts a page mapped by the range and by its snapshot twice."
echo
echo "| size | backing | async at the call | async settled | eager | fork | fork +4x | mmap + memcpy | RSS: async settled / eager / fork child / memcpy |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for s in $sizes; do
	for b in $backings; do
		why=$(why_none "$run" "$s" "$b")
		if [ -n "$why" ]; then
			echo "| $s MiB | $b | $why | | | | | | |"
			continue
		fi
		ac=$(mem "$run" async "$s" "$b" call_)
		cs=$(e "$run" async_call_skipped "$s" "$b")
		[ -n "$cs" ] && ac="skipped: ${cs//+/ }"
		echo "| $s MiB | $b | $ac | $(mem "$run" async "$s" "$b") | $(mem "$run" eager "$s" "$b") | $(mem "$run" fork "$s" "$b") | $(mem "$run" fork4x "$s" "$b") | $(mem "$run" memcpy "$s" "$b") | $(or_dash "$(e "$run" async_rss_kb "$s" "$b")") / $(or_dash "$(e "$run" eager_rss_kb "$s" "$b")") / $(or_dash "$(e "$run" fork_rss_kb "$s" "$b")") / $(or_dash "$(e "$run" memcpy_rss_kb "$s" "$b")") |"
	done
done
echo

# Memory targets: exact, so once.
xa=$(pct_of "$(e "$run" async_extra_kb 256 4k)" 256)
xe=$(pct_of "$(e "$run" eager_extra_kb 256 4k)" 256)
xmax=-
for s in $sizes; do
	for b in $backings; do
		[ "$s" -ge 16 ] || continue
		for m in async eager; do
			x=$(pct_of "$(e "$run" "${m}_extra_kb" "$s" "$b")" "$s")
			[ "$x" = - ] && continue
			xmax=$(awk -v a="$x" -v m="$xmax" 'BEGIN { print (m == "-" || a + 0 > m + 0) ? a : m }')
		done
	done
done
echo "Target (benchmark, not test): snapshot extra memory <= 1% of the range (256 MiB, 4k): asynchronous once settled $(unit "$xa" %), $(verdict "$xa" le 1); eager $(unit "$xe" %), $(verdict "$xe" le 1) (worst of the rows from 16 MiB on: $(unit "$xmax" %))."
echo
plot "$outdir/table-e.dat" "$outdir/table-e.png" "${mode%%:*}" "us (guest)"
plots="$rel/table-e.png"
if [ "$nmt" -gt 0 ]; then
	plot "$outdir/table-e-mttcg.dat" "$outdir/table-e-mttcg.png" "multi-threaded TCG, median of $nmt boots" "us (wall clock)"
	plots="$plots, $rel/table-e-mttcg.png"
fi
echo "Plots: $plots (log scale)."
echo
