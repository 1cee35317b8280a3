#!/usr/bin/env bash
# Table E of the report, snapshot cost: cow_snapshot() of a range against
# fork() and mmap + memcpy of it, from the guest's "r table=E" lines (the
# sizes and backings the guest ran).
# Usage: snapshot-cost.sh RUNDIR REL
#   RUNDIR  make run's folder (RUNDIR/bench: the whole suite's job)
#   REL     RUNDIR as the report names it, for its plot
# Prints the table (markdown); writes RUNDIR/table-e.dat and table-e.png.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rundir=$1 rel=$2
run=$rundir/bench outdir=$rundir
kernel=$(val "$run" kernel)
mode=$(mode_of "$run")
dat=$outdir/table-e.dat
sizes=$(values "$run" size_mib table=E)
backings=$(values "$run" backing table=E)

# e KEY SIZE BACKING: KEY of the table E line of that region.
e() { get "$run" "$1" table=E "size_mib=$2" "backing=$3"; }

# extra NAME SIZE BACKING: "extra KiB (page tables KiB)" of a measurement.
extra() {
	local x p
	x=$(e "${1}_extra_kb" "$2" "$3")
	p=$(e "${1}_pte_kb" "$2" "$3")
	if [ -z "$x" ]; then
		echo "-"
	else
		echo "$x ($(or_dash "$p"))"
	fi
}

# pct_of KIB SIZE_MIB [DECIMALS]: KIB as a percentage of SIZE_MIB.
pct_of() { awk -v a="$1" -v m="$2" -v d="${3:-2}" 'BEGIN { if (a == "" || m == 0) print "-"; else printf "%." d "f\n", a * 100 / (m * 1024) }'; }

echo "## E. cow_snapshot() vs fork() vs mmap + memcpy"
echo
# The guest's one line when the kernel has no cow_snapshot().
gskip=$(awk '{ sub(/\r$/, "") } /^r table=E skipped=/ { print substr($3, 9); exit }' "$run/results.out")
if [ -n "$gskip" ]; then
	echo "Skipped: ${gskip//+/ }."
	echo
	exit 0
fi
echo "Kernel $kernel; $mode. Units: us (guest) for times, KiB for memory."
echo "A populated private anonymous region of each size (4k: MADV_NOHUGEPAGE; thp: 2 MiB aligned, MADV_HUGEPAGE; THP-backed: smaps AnonHugePages), written all over before each run. cow_snapshot: the call, kernel-chosen address; fork: fork() of a process holding only the region, until it returns in the parent; fork +4x: the same with 4 x the size more populated memory (same backing) in the process; mmap + memcpy: a new mapping of the same backing and a copy into it. Each time is the median of $(or_dash "$(e reps 256 4k)") runs (1 run from 1 GiB on)."
echo "Extra memory: growth of AnonPages + PageTables + KernelStack + Slab in /proc/meminfo while the snapshot, the child or the copy exists (vm.stat_refresh first), with the page tables alone (VmPTE growth; fork: the child's VmPTE) in parentheses."
echo
echo "| size | backing | THP-backed | cow_snapshot | fork | fork +4x | mmap + memcpy | snapshot / memcpy | snapshot / fork | extra: snapshot | extra: fork | extra: fork +4x | extra: memcpy | notes |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
: >"$dat"
for s in $sizes; do
	for b in $backings; do
		rskip=$(e skipped "$s" "$b")
		err=$(e error "$s" "$b")
		if [ -z "$(e fork_ns "$s" "$b")" ]; then
			why="no result"
			[ -n "$err" ] && why="error: $err"
			[ -n "$rskip" ] && why="skipped: $rskip"
			echo "| $s MiB | $b | ${why//+/ } | | | | | | | | | | | |"
			continue
		fi
		sn=$(e snap_ns "$s" "$b")
		fk=$(e fork_ns "$s" "$b")
		f4=$(e fork4x_ns "$s" "$b")
		mc=$(e memcpy_ns "$s" "$b")
		notes=""
		[ -n "$rskip" ] && notes="cow_snapshot skipped: ${rskip//+/ }"
		f4skip=$(e fork4x_skipped "$s" "$b")
		[ -n "$f4skip" ] && notes="$notes${notes:+; }fork +4x skipped: ${f4skip//+/ }"
		[ -n "$err" ] && notes="$notes${notes:+; }error: ${err//+/ }"
		[ -n "$(e emulated "$s" "$b")" ] && notes="$notes${notes:+; }cow_snapshot emulated (test build)"
		echo "| $s MiB | $b | $(pct_of "$(e thp_kb "$s" "$b")" "$s" 0)% | $(usec "$sn") | $(usec "$fk") | $(usec "$f4") | $(usec "$mc") | $(ratio "$sn" "$mc") | $(ratio "$sn" "$fk") | $(extra snap "$s" "$b") | $(extra fork "$s" "$b") | $(extra fork4x "$s" "$b") | $(extra memcpy "$s" "$b") | ${notes:--} |"
		printf '"%s MiB %s" %s %s %s %s\n' "$s" "$b" "$(usec "$sn")" \
			"$(usec "$fk")" "$(usec "$f4")" "$(usec "$mc")" >>"$dat"
	done
done
echo

# Targets, computed from the rows above.
s4=$(e snap_ns 256 4k)
r_mc=$(ratio "$s4" "$(e memcpy_ns 256 4k)")
r_fk=$(ratio "$s4" "$(e fork_ns 256 4k)")
x4=$(pct_of "$(e snap_extra_kb 256 4k)" 256)
sth=$(e snap_ns 256 thp)
r_th=$(ratio "$(e memcpy_ns 256 thp)" "$sth")
th_pct=$(pct_of "$(e thp_kb 256 thp)" 256 0)
xmax=-
for s in $sizes; do
	for b in $backings; do
		[ "$s" -ge 16 ] || continue
		x=$(pct_of "$(e snap_extra_kb "$s" "$b")" "$s")
		[ "$x" = - ] && continue
		xmax=$(awk -v a="$x" -v m="$xmax" 'BEGIN { print (m == "-" || a + 0 > m + 0) ? a : m }')
	done
done
echo "Targets (benchmark, not test):"
echo "- cow_snapshot(256 MiB, 4k) <= 1/10 of mmap + memcpy: $(unit "$r_mc" x), $(verdict "$r_mc" le 0.1);"
echo "- cow_snapshot(256 MiB, 4k) <= 1.0x fork() of the range-only process: $(unit "$r_fk" x), $(verdict "$r_fk" le 1.0);"
echo "- snapshot extra memory <= 1% of the range (256 MiB, 4k): $(unit "$x4" %), $(verdict "$x4" le 1) (worst of the rows from 16 MiB on: $(unit "$xmax" %));"
echo "- THP-backed (256 MiB, $(unit "$th_pct" %) THP-backed) >= 50x faster than mmap + memcpy: $(unit "$r_th" x), $(verdict "$r_th" ge 50)."
echo
echo "Plot: $rel/table-e.png (log scale)."
echo

[ -s "$dat" ] || exit 0
command -v gnuplot >/dev/null || exit 0
# The cow_snapshot bars only where there are some.
plot="\"$dat\" using 3:xtic(1) title \"fork (range only)\", \"\" using 4 title \"fork (+4x memory)\", \"\" using 5 title \"mmap + memcpy\""
if awk '$(NF - 3) != "-" { found = 1 } END { exit !found }' "$dat"; then
	plot="\"$dat\" using 2:xtic(1) title \"cow_snapshot\", ${plot/:xtic(1)/}"
fi
gnuplot <<EOF >&2 || note "gnuplot failed: no table-e.png" >&2
set terminal png size 1000,500 noenhanced
set output "$outdir/table-e.png"
set title "Copying a range: cow_snapshot() vs fork() vs mmap + memcpy ($kernel, ${mode%%:*})"
set logscale y
set ylabel "us (guest), log scale"
set datafile missing "-"
set style data histograms
set style histogram clustered
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top left
set grid ytics
set xtics rotate by -30
plot $plot
EOF
