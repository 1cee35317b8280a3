#!/usr/bin/env bash
# Table G of the report, writer stall: a key-value store's writer while
# an image of its heap is taken with fork() or cow_snapshot() (eager or
# asynchronous), from the guest's "r table=G" lines (the methods and sizes
# the guest ran): the -icount boot's (RUNDIR/bench) and, where make run
# had them, the medians of the multi-threaded TCG boots' (RUNDIR/mttcg*).
# Usage: writer-stall.sh RUNDIR REL
#   RUNDIR  make run's folder
#   REL     RUNDIR as the report names it, for its plots
# Prints the tables (markdown); writes RUNDIR/table-g.dat and table-g.png
# (and table-g-mttcg.*).
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rundir=$1 rel=$2
run=$rundir/bench outdir=$rundir
kernel=$(val "$run" kernel)
mode=$(mode_of "$run")
methods=$(values "$run" method table=G)
mt=$(mttcg_dirs "$rundir" | tr '\n' ' ')
nmt=$(wc -w <<<"$mt")

# g DIRS KEY METHOD OTHER_MIB: KEY of the table G line of that run (the
# median over DIRS).
g() { med_get "$1" "$2" table=G "method=$3" "other_mib=$4"; }

method_label() {
	case $1 in
	fork) echo "fork(), child serialises" ;;
	snapshot-eager) echo "cow_snapshot() eager, thread serialises" ;;
	snapshot-async) echo "cow_snapshot() async, thread serialises" ;;
	snapshot-async-unshare) echo "cow_snapshot() async + MADV_COW_UNSHARE of the hot set" ;;
	snapshot-eager-unshare) echo "cow_snapshot() eager + MADV_COW_UNSHARE of the hot set" ;;
	*) echo "$1" ;;
	esac
}

# heap_share OTHER_MIB: the heap's part of the process.
heap_share() {
	awk -v h="$heap" -v o="$1" 'BEGIN {
		if (o == 0) print "all"
		else if (o == 3 * h) print "1/4"
		else printf "%.0f%%\n", h * 100 / (h + o) }'
}

# why_none DIRS METHOD OTHER_MIB: why a run has no result, or empty.
why_none() { why_no_result g updates "$@"; }

# verified DIRS METHOD OTHER_MIB: yes, or how many boots' images failed.
verified() {
	local d v bad=0 n=0
	for d in $1; do
		v=$(get "$d" verified table=G "method=$2" "other_mib=$3")
		[ -n "$v" ] || continue
		n=$((n + 1))
		[ "$v" = 1 ] || bad=$((bad + 1))
	done
	if [ "$n" = 0 ]; then echo "-"; elif [ "$bad" = 0 ]; then echo yes; else echo "NO ($bad of $n)"; fi
}

# damage DIRS METHOD OTHER_MIB: each damaged image, boot by boot.
damage() {
	local d b z o out=""
	for d in $1; do
		b=$(get "$d" bad table=G "method=$2" "other_mib=$3")
		case $b in "" | 0) continue ;; esac
		z=$(get "$d" bad_zero table=G "method=$2" "other_mib=$3")
		o=$(get "$d" heap_offset_first table=G "method=$2" "other_mib=$3")
		out="$out${out:+; }$([ "$(wc -w <<<"$1")" -gt 1 ] && echo "$(basename "$d"): ")$b damaged records${z:+ ($z all zero)}${o:+ from heap offset $o}"
	done
	echo "$out"
}

# notes DIRS METHOD OTHER_MIB
notes() {
	local n="" v
	v=$(g "$1" unshare_ns "$2" "$3")
	[ -z "$v" ] || n="unshare took $(usec "$v") us"
	v=$(g "$1" unshare_error "$2" "$3")
	[ -z "$v" ] || n="MADV_COW_UNSHARE failed: ${v//+/ }"
	v=$(g "$1" unsettled_pmds "$2" "$3")
	[ -z "$v" ] || n="$n${n:+; }$v PMDs still pending after 30 s"
	if [ "$(g "$1" flags "$2" "$3")" = 0 ] && [ "${2#snapshot-eager}" != "$2" ]; then
		n="$n${n:+; }eager = flags 0 (the kernel's only mode)"
	fi
	v=$(damage "$1" "$2" "$3")
	[ -z "$v" ] || n="$n${n:+; }$v"
	v=$(g "$1" error "$2" "$3")
	[ -z "$v" ] || n="$n${n:+; }error: ${v//+/ }"
	[ -z "$(g "$1" emulated "$2" "$3")" ] || n="$n${n:+; }cow_snapshot emulated (test build)"
	echo "${n:--}"
}

# range DIRS KEY METHOD OTHER_MIB: " (MIN-MAX us)" over several boots.
range_us() {
	local r
	[ "$(wc -w <<<"$1")" -gt 1 ] || return 0
	r=$(range_get "$1" "$2" table=G "method=$3" "other_mib=$4")
	[ -z "$r" ] || echo " ($(usec "${r%-*}")-$(usec "${r#*-}"))"
}

# latency_table DIRS DAT UNIT: the writer's latencies, the plot's data to DAT.
latency_table() {
	local d=$1 dat=$2 m o why st p99 bp99 row some
	echo "| method | heap share | stall $3 (with the call) | call $3 | settled after $3 | p50 ns | p99 ns | max ns (other updates) | baseline p50 / p99 ns | p99 / baseline p99 | updates in window | window $3 | serialise $3 | TLB IPIs | verified | notes |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
	: >"$dat"
	for m in $methods; do
		row="\"$m\"" some=0
		for o in $others; do
			why=$(why_none "$d" "$m" "$o")
			if [ -n "$why" ]; then
				echo "| $(method_label "$m") | $(heap_share "$o") | $why | | | | | | | | | | | | | |"
				row="$row - -"
				continue
			fi
			st=$(g "$d" stall_ns "$m" "$o")
			p99=$(g "$d" p99_ns "$m" "$o")
			bp99=$(g "$d" base_p99_ns "$m" "$o")
			echo "| $(method_label "$m") | $(heap_share "$o") | $(usec "$st")$(range_us "$d" stall_ns "$m" "$o") | $(usec "$(g "$d" call_ns "$m" "$o")") | $(usec "$(g "$d" settle_ns "$m" "$o")") | $(g "$d" p50_ns "$m" "$o") | $p99 | $(g "$d" max_ns "$m" "$o") | $(or_dash "$(g "$d" base_p50_ns "$m" "$o")") / $(or_dash "$bp99") | $(unit "$(ratio "$p99" "$bp99")" x) | $(g "$d" updates "$m" "$o") | $(usec "$(g "$d" window_ns "$m" "$o")") | $(usec "$(g "$d" serialise_ns "$m" "$o")") | $(or_dash "$(g "$d" tlb_ipis "$m" "$o")") | $(verified "$d" "$m" "$o") | $(notes "$d" "$m" "$o") |"
			row="$row $(usec "$st") $(usec "$p99")" some=1
		done
		# A method without any result is left out of the plot.
		[ $some = 0 ] || echo "$row" >>"$dat"
	done
	echo
}

# first_table DIRS: the writer's first writes after the call.
first_table() {
	local d=$1 m o f2 fp dfr
	echo "| method | heap share | first write to a 2 MiB: n / p50 / p99 / max ns | first write to another page of a written 2 MiB: n / p50 / p99 ns | first-2 MiB p50 / first-page p50 | PMDs deferred | settled by fault / operation / worker, dropped |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
	for m in $methods; do
		for o in $others; do
			[ -z "$(why_none "$d" "$m" "$o")" ] || continue
			f2=$(g "$d" first2m_p50_ns "$m" "$o")
			fp=$(g "$d" firstpage_p50_ns "$m" "$o")
			dfr=$(g "$d" pmds_deferred "$m" "$o")
			echo "| $(method_label "$m") | $(heap_share "$o") | $(or_dash "$(g "$d" first2m_n "$m" "$o")") / $(or_dash "$f2") / $(or_dash "$(g "$d" first2m_p99_ns "$m" "$o")") / $(or_dash "$(g "$d" first2m_max_ns "$m" "$o")") | $(or_dash "$(g "$d" firstpage_n "$m" "$o")") / $(or_dash "$fp") / $(or_dash "$(g "$d" firstpage_p99_ns "$m" "$o")") | $(unit "$(ratio "$f2" "$fp")" x) | $(or_dash "$dfr") | $(or_dash "$(g "$d" settle_fault "$m" "$o")") / $(or_dash "$(g "$d" settle_op "$m" "$o")") / $(or_dash "$(g "$d" settle_bg "$m" "$o")"), $(or_dash "$(g "$d" pmds_dropped "$m" "$o")") |"
		done
	done
	echo
}

# targets DIRS: the issue's targets, from that table's numbers.
targets() {
	local d=$1 o fs r p99 bp99 rp m bad
	for o in $others; do
		fs=$(g "$d" stall_ns fork "$o")
		r=$(ratio "$(g "$d" stall_ns snapshot-async "$o")" "$fs")
		echo "- writer stall with asynchronous cow_snapshot() <= 1/20 of fork()'s, heap = $(heap_share "$o") of the process: $(unit "$r" x), $(verdict "$r" le 0.05) (eager: $(unit "$(ratio "$(g "$d" stall_ns snapshot-eager "$o")" "$fs")" x); async + MADV_COW_UNSHARE: $(unit "$(ratio "$(g "$d" stall_ns snapshot-async-unshare "$o")" "$fs")" x));"
	done
	for o in $others; do
		for m in snapshot-async snapshot-async-unshare; do
			p99=$(g "$d" p99_ns "$m" "$o")
			bp99=$(g "$d" base_p99_ns "$m" "$o")
			rp=$(ratio "$p99" "$bp99")
			[ -n "$p99" ] || [ "$m" = snapshot-async ] || continue
			echo "- writer p99 during the window within 2x of its baseline p99, $(method_label "$m"), heap = $(heap_share "$o") of the process: $(unit "$rp" x), $(verdict "$rp" le 2);"
		done
	done
	bad=0
	for r in $d; do
		bad=$((bad + $(awk '{ sub(/\r$/, "") } /^r table=G / && / verified=0/ { n++ } END { print n + 0 }' "$r/results.out")))
	done
	echo "- every image verified: $([ "$bad" = 0 ] && echo yes || echo "NO, $bad did not")."
}

# plot DAT PNG TITLE_MODE YLABEL
plot() {
	local dat=$1 png=$2 tmode=$3 ylabel=$4 p="" col=2 o
	[ -s "$dat" ] || return 0
	command -v gnuplot >/dev/null || return 0
	for o in $others; do
		p="$p${p:+, }\"$dat\" using $col$([ $col = 2 ] && echo ":xtic(1)") title \"longest stall, heap $(heap_share "$o")\""
		p="$p, \"\" using $((col + 1)) title \"p99, heap $(heap_share "$o")\""
		col=$((col + 2))
	done
	gnuplot <<EOF >&2 || note "gnuplot failed: no $png" >&2
set terminal png size 1000,500 noenhanced
set output "$png"
set title "Writer latency while an image of the heap is taken ($kernel, $tmode)"
set logscale y
set ylabel "$ylabel, log scale"
set datafile missing "-"
set style data histograms
set style histogram clustered
set style fill solid 0.8 border -1
set boxwidth 0.9
set key below
set grid ytics
set xtics rotate by -15
plot $p
EOF
}

echo "## G. A writer while an image of its heap is taken"
echo
gskip=$(awk '{ sub(/\r$/, "") } /^r table=G skipped=/ { print substr($3, 9); exit }' "$run/results.out")
if [ -n "$gskip" ]; then
	echo "Skipped: ${gskip//+/ }."
	echo
	exit 0
fi
# The OTHER_MIB values run, in the order they ran.
others=$(values "$run" other_mib table=G)
heap=$(get "$run" heap_mib table=G)
if [ -z "$others" ] || [ -z "$heap" ]; then
	echo "No results."
	echo
	exit 0
fi
echo "Kernel $kernel. A key-value store of 256-byte records (key, version, value, checksum; found by offset from the heap base, so a reader can walk an image at any address) in a $heap MiB heap, the rest of the process other populated memory, all 4 KiB pages. One thread updates random records, 90% of them in the first eighth of the heap (the hot set), each update timed. After a warm-up of $(usec "$(g "$run" warmup_ns fork "${others%%$'\n'*}")") us it takes one image: fork() (the child serialises it and exits), cow_snapshot() inline, eager (COW_SNAPSHOT_EAGER: every page table copied in the call) or asynchronous (the default: the call write-protects the heap's PMD entries and returns; each 2 MiB is settled, its page table copied, by the first fault under it on either side, by the background worker, or before an operation on the range), a thread serialising the image and then unmapping it; with MADV_COW_UNSHARE a second thread unshares the hot set at once. The window runs from the call until the image is serialised and gone (the child reaped, the snapshot unmapped); the update that follows the call is timed with it."
echo
echo "Stall: the update timed together with the call, the pause the image costs the writer; max: the slowest of all other updates of the window. Settled after: from the call until /proc/vmstat shows no snapshot PMD pending (a sleeping thread polls; fork and eager: complete at the call). Baseline: the warm-up updates' p50 and p99; an update that is the first write to its page after the call takes a COW fault (G.3), so once such updates are more than 1% of the window's, the window's p99 is the cost of a fault (with its TLB-shootdown IPI where a serialising thread shares the mm), whatever the mode. TLB IPIs: TLB-shootdown interrupts received during the window (/proc/interrupts); the writer's copy faults must flush the TLB of every other CPU running its mm, which a serialising thread does and a fork()ed child does not. Verified: every record's checksum, key and value check and the versions add up to the updates done before the call."
echo
echo "What transfers to hardware: under -icount the vCPUs take turns on one host thread, so a TLB-shootdown IPI from the writer waits for the other vCPU's turn (milliseconds): there the cow_snapshot rows' p99, max and window measure the emulator, and their absolute times do not transfer; the stalls and calls are single-threaded instruction counts, and their ratios (stall / fork's stall) are the part that roughly transfers. Under multi-threaded TCG both vCPUs run at once: an IPI is answered while the writer waits, and the background worker settles beside the writer (and may hold up its faults), so the p99, max, settle times and who settled what show that cross-CPU behaviour; but an IPI is still a round trip between host threads (longer when the target vCPU is idle and its thread must be woken) and all times are emulation speed with host noise: compare ratios, not absolute us."
echo
echo "### G.1 Under -icount"
echo
echo "Mode: $mode. Units: ns (guest) for update latencies, us (guest) for the rest."
echo
latency_table "$run" "$outdir/table-g.dat" us
if [ "$nmt" -gt 0 ]; then
	echo "### G.2 Under multi-threaded TCG"
	echo
	echo "Mode: $(mode_of "${mt%% *}"); $(val "${mt%% *}" cpus) vCPUs. Units: ns (wall clock) for update latencies, us (wall clock) for the rest; the median of $nmt boots (the stall's range in parentheses)."
	echo
	latency_table "$mt" "$outdir/table-g-mttcg.dat" us
else
	rm -f "$outdir/table-g-mttcg.dat" "$outdir/table-g-mttcg.png"
	echo "### G.2 Under multi-threaded TCG: not run (MTTCG_BOOTS=0, or the suite ran under KVM)."
	echo
fi

echo "### G.3 The writer's first writes after the call"
echo
echo "First write to a 2 MiB: the writer's first update in each 2 MiB of the heap after the call (not the one timed with the call); asynchronous, it settles that 2 MiB (copies its page table, ~512 entries) unless the worker or the serialiser got there first, and makes the page's COW copy. First write to another page: the first update to a page whose 2 MiB was written before: the COW copy alone. PMDs deferred and settled by: /proc/vmstat deltas over the window (the serialiser's reads of the snapshot settle too); dropped: unmapped unsettled. Units: ns; -icount: guest instructions, multi-threaded TCG: wall clock, median of the boots."
echo
echo "Under -icount:"
echo
first_table "$run"
if [ "$nmt" -gt 0 ]; then
	echo "Under multi-threaded TCG, the median of $nmt boots:"
	echo
	first_table "$mt"
fi

echo "Targets (benchmark, not test), -icount:"
targets "$run"
echo
if [ "$nmt" -gt 0 ]; then
	echo "Targets (benchmark, not test), multi-threaded TCG (medians of $nmt boots):"
	targets "$mt"
	echo
fi
plot "$outdir/table-g.dat" "$outdir/table-g.png" "${mode%%:*}" "us (guest)"
plots="$rel/table-g.png"
if [ "$nmt" -gt 0 ]; then
	plot "$outdir/table-g-mttcg.dat" "$outdir/table-g-mttcg.png" "multi-threaded TCG, median of $nmt boots" "us (wall clock)"
	plots="$plots, $rel/table-g-mttcg.png"
fi
echo "Plots: $plots (log scale)."
echo
