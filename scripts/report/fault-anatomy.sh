#!/usr/bin/env bash
# Table A of the report, fault anatomy: one 4 KiB COW fault, the latency
# the process sees against the kernel's phases, from the guest's
# "r table=B ... class=4k" lines.
# Usage: fault-anatomy.sh RUNDIR REL
#   RUNDIR  make run's folder (RUNDIR/bench: the whole suite's job)
#   REL     RUNDIR as the report names it, for its plot
# Prints the table (markdown); writes RUNDIR/table-a.dat and table-a.png.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rundir=$1 rel=$2
run=$rundir/bench dat=$rundir/table-a.dat
kernel=$(val "$run" kernel)
mode=$(mode_of "$run")
# k KEY: KEY of the kernel-side (traced) 4 KiB line.
k() { get "$run" "$1" table=B mode=trace class=4k; }

u50=$(get "$run" lat_p50 table=B mode=user class=4k)
u99=$(get "$run" lat_p99 table=B mode=user class=4k)
echo "## A. Anatomy of one 4 KiB COW fault"
echo
echo "Kernel $kernel; $mode. Units: ns (guest). A process writes one byte to each of $(or_dash "$(get "$run" regions table=B mode=user class=4k)") COW-shared 4 KiB pages."
echo "User side: the write timed in the process with vm.cow_latency_sample=0 (timer overhead subtracted)."
echo "Kernel side: the same faults with vm.cow_latency_sample=1, read from the cow:cow_copy tracepoint."
echo
echo "| part | p50 ns | p99 ns | share of the user p50 |"
echo "| --- | ---: | ---: | ---: |"
echo "| write fault seen by the process | $(or_dash "$u50") | $(or_dash "$u99") | 100% |"
for ph in alloc copy map total; do
	case $ph in
	alloc) label="kernel: alloc (folio allocation + memcg charge)" ;;
	copy) label="kernel: copy (4 KiB)" ;;
	map) label="kernel: map (PTL, PTE switch, rmap, TLB flush)" ;;
	total) label="kernel: total" ;;
	esac
	echo "| $label | $(or_dash "$(k "${ph}_p50")") | $(or_dash "$(k "${ph}_p99")") | $(share "$(k "${ph}_p50")" "$u50") |"
done
rest=$(minus "$u50" "$(k total_p50)")
printf '"4 KiB COW fault p50" %s %s %s %s\n' "$(k alloc_p50)" "$(k copy_p50)" \
	"$(k map_p50)" "$rest" >"$dat"
echo "| trap, entry, fault walk, return (user p50 - kernel total p50) | $rest | - | $(share "$rest" "$u50") |"
echo
echo "Plot: $rel/table-a.png. Each p50 is taken on its own, so the parts need not add up to the total exactly."
echo

command -v gnuplot >/dev/null || exit 0
gnuplot <<EOF >&2 || note "gnuplot failed: no table-a.png" >&2
set terminal png size 900,260
set output "$rundir/table-a.png"
set title "Anatomy of a 4 KiB COW fault, p50 ns ($kernel, ${mode%%:*})"
set style data histograms
set style histogram rowstacked
set style fill solid 0.8 border -1
set boxwidth 0.5
set key outside right
set grid ytics
set ylabel "ns (guest)"
set yrange [0:*]
plot "$dat" using 2:xtic(1) title "alloc", "" using 3 title "copy", "" using 4 title "map", "" using 5 title "trap/entry/walk/return"
EOF
