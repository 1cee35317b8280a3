#!/usr/bin/env bash
# Table G of the report, writer stall: a key-value store's writer while
# an image of its heap is taken with fork() or cow_snapshot(), from the
# guest's "r table=G" lines (the methods and sizes the guest ran).
# Usage: writer-stall.sh RUNDIR REL
#   RUNDIR  make run's folder (RUNDIR/bench: the whole suite's job)
#   REL     RUNDIR as the report names it, for its plot
# Prints the table (markdown); writes RUNDIR/table-g.dat and table-g.png.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rundir=$1 rel=$2
run=$rundir/bench outdir=$rundir
kernel=$(val "$run" kernel)
mode=$(mode_of "$run")
dat=$outdir/table-g.dat
methods=$(values "$run" method table=G)

# g KEY METHOD OTHER_MIB: KEY of the table G line of that run.
g() { get "$run" "$1" table=G "method=$2" "other_mib=$3"; }

method_label() {
	case $1 in
	fork) echo "fork(), child serialises" ;;
	snapshot) echo "cow_snapshot(), thread serialises" ;;
	snapshot-unshare) echo "cow_snapshot() + MADV_COW_UNSHARE of the hot set" ;;
	*) echo "$1" ;;
	esac
}

# share OTHER_MIB: the heap's part of the process.
heap_share() {
	awk -v h="$heap" -v o="$1" 'BEGIN {
		if (o == 0) print "all"
		else if (o == 3 * h) print "1/4"
		else printf "%.0f%%\n", h * 100 / (h + o) }'
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
others=$(awk '{ sub(/\r$/, "") } /^r table=G / {
	for (i = 3; i <= NF; i++) if ($i ~ /^other_mib=/ && !seen[$i]++) print substr($i, 11) }' "$run/results.out")
heap=$(get "$run" heap_mib table=G)
if [ -z "$others" ] || [ -z "$heap" ]; then
	echo "No results."
	echo
	exit 0
fi
echo "Kernel $kernel; $mode. Units: ns (guest) for update latencies, us (guest) for the rest."
echo "A key-value store of 256-byte records (key, version, value, checksum; found by offset from the heap base, so a reader can walk an image at any address) in a $heap MiB heap, the rest of the process other populated memory, all 4 KiB pages. One thread updates random records, 90% of them in the first eighth of the heap (the hot set), each update timed. After a warm-up of $(usec "$(g warmup_ns fork "${others%%$'\n'*}")") us it takes one image: fork() (the child serialises it and exits), cow_snapshot() inline (a thread serialises the image, then unmaps it), or cow_snapshot() with a second thread calling MADV_COW_UNSHARE on the hot set at once. The window runs from the call until the image is serialised and gone (the child reaped, the snapshot unmapped); the update that follows the call is timed with it."
echo "Stall: the update timed together with the fork() or cow_snapshot() call, the pause the image costs the writer (the target's \"longest stall\"); max: the slowest of all other updates of the window. Times are guest time. TLB IPIs: TLB-shootdown interrupts received during the window (/proc/interrupts); the writer's copy faults must flush the TLB of every other CPU running its mm, which a serialising thread does and a fork()ed child does not. Under TCG the cow_snapshot rows' p99 and max sit far above the cost of one copy fault; how much of that is emulation (the vCPUs run round-robin on one host thread) and how much hardware would show is not established here: measure under KVM. Baseline: the warm-up updates' p50 and p99. Verified: every record's checksum, key and value check and the versions add up to the updates done before the call."
echo
echo "| method | heap share | updates in window | p50 ns | p99 ns | max ns (other updates) | stall us (with the call) | call us | serialise us | window us | TLB IPIs | baseline p50 / p99 ns | verified | notes |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
: >"$dat"
for m in $methods; do
	row="\"$m\"" some=0
	for o in $others; do
		skip=$(g skipped "$m" "$o")
		err=$(g error "$m" "$o")
		n=$(g updates "$m" "$o")
		if [ -z "$n" ]; then
			why="no result"
			[ -n "$err" ] && why="error: $err"
			[ -n "$skip" ] && why="skipped: $skip"
			echo "| $(method_label "$m") | $(heap_share "$o") | ${why//+/ } | | | | | | | | | | | |"
			row="$row - -"
			continue
		fi
		notes=""
		un=$(g unshare_ns "$m" "$o")
		ue=$(g unshare_error "$m" "$o")
		[ -n "$un" ] && notes="unshare took $(usec "$un") us"
		[ -n "$ue" ] && notes="MADV_COW_UNSHARE failed: ${ue//+/ }"
		[ -n "$err" ] && notes="$notes${notes:+; }error: ${err//+/ }"
		[ -n "$(g emulated "$m" "$o")" ] && notes="$notes${notes:+; }cow_snapshot emulated (test build)"
		v=$(g verified "$m" "$o")
		case $v in 1) v=yes ;; 0) v="NO ($(g bad "$m" "$o") bad records)" ;; *) v=- ;; esac
		st=$(g stall_ns "$m" "$o")
		echo "| $(method_label "$m") | $(heap_share "$o") | $n | $(g p50_ns "$m" "$o") | $(g p99_ns "$m" "$o") | $(g max_ns "$m" "$o") | $(usec "$st") | $(usec "$(g call_ns "$m" "$o")") | $(usec "$(g serialise_ns "$m" "$o")") | $(usec "$(g window_ns "$m" "$o")") | $(or_dash "$(g tlb_ipis "$m" "$o")") | $(or_dash "$(g base_p50_ns "$m" "$o")") / $(or_dash "$(g base_p99_ns "$m" "$o")") | $v | ${notes:--} |"
		row="$row $(usec "$st") $(usec "$(g p99_ns "$m" "$o")")" some=1
	done
	# A method without any result is left out of the plot.
	[ $some = 0 ] || echo "$row" >>"$dat"
done
echo

# Targets: against fork() where the heap is a quarter of the process.
q=""
for o in $others; do
	[ "$(heap_share "$o")" = 1/4 ] && q=$o
done
echo "Targets (benchmark, not test):"
if [ -z "$q" ]; then
	echo "- longest stall with cow_snapshot() <= 1/5 of fork()'s, heap = 1/4 of the process: no data (no run with the heap a quarter of the process)."
else
	fs=$(g stall_ns fork "$q")
	r1=$(ratio "$(g stall_ns snapshot "$q")" "$fs")
	r2=$(ratio "$(g stall_ns snapshot-unshare "$q")" "$fs")
	echo "- longest stall with cow_snapshot() <= 1/5 of fork()'s, heap = 1/4 of the process: $(unit "$r1" x), $(verdict "$r1" le 0.2) (with MADV_COW_UNSHARE: $(unit "$r2" x), $(verdict "$r2" le 0.2))."
fi
bad=$(awk '{ sub(/\r$/, "") } /^r table=G / && / verified=0/ { n++ } END { print n + 0 }' "$run/results.out")
echo "- every image verified: $([ "$bad" = 0 ] && echo yes || echo "NO, $bad did not")."
echo
echo "Plot: $rel/table-g.png (log scale)."
echo

[ -s "$dat" ] || exit 0
command -v gnuplot >/dev/null || exit 0
plot="\"$dat\" using 2:xtic(1)" col=2
for o in $others; do
	[ $col = 2 ] || plot="$plot, \"\" using $col"
	plot="$plot title \"longest stall, heap $(heap_share "$o")\""
	plot="$plot, \"\" using $((col + 1)) title \"p99, heap $(heap_share "$o")\""
	col=$((col + 2))
done
gnuplot <<EOF >&2 || note "gnuplot failed: no table-g.png" >&2
set terminal png size 900,500 noenhanced
set output "$outdir/table-g.png"
set title "Writer latency while an image of the heap is taken ($kernel, ${mode%%:*})"
set logscale y
set ylabel "us (guest), log scale"
set datafile missing "-"
set style data histograms
set style histogram clustered
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top right
set grid ytics
plot $plot
EOF
