#!/usr/bin/env bash
# Table C of the report, pre-copy: windows x write patterns, from the
# guest's "r table=C" lines (the grid is the one the guest ran).
# Usage: precopy.sh RUNDIR REL
#   RUNDIR  make run's folder (RUNDIR/bench: the whole suite's job)
#   REL     RUNDIR as the report names it, for its plot
# Prints the table (markdown); writes RUNDIR/table-c.dat and table-c.png.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rundir=$1 rel=$2
run=$rundir/bench outdir=$rundir
kernel=$(val "$run" kernel)
mode=$(mode_of "$run")
dat=$outdir/table-c.dat
workloads=$(values "$run" workload table=C)
windows=$(values "$run" window table=C)

# c KEY WORKLOAD WINDOW: KEY of that table C line.
c() { get "$run" "$1" table=C "workload=$2" "window=$3"; }

wl_label() {
	case $1 in
	seq) echo "sequential" ;;
	random) echo "random (1/8 of the pages)" ;;
	stride2) echo "stride 2" ;;
	desc) echo "descending" ;;
	*) echo "$1" ;;
	esac
}

win_label() {
	local w=${1%%:*} into=""
	[ "$w" = "$1" ] || into=", into ${1#*:} folios"
	case $w in
	a*) echo "adaptive, max ${w#a}$into" ;;
	*) echo "$w$into" ;;
	esac
}

echo "## C. Pre-copy: window x write pattern"
echo
skip=$(get "$run" skipped table=C)
if [ -n "$skip" ]; then
	echo "Skipped: ${skip//+/ }."
	echo
	exit 0
fi
pages=$(c pages seq 0)
mc=$(get "$run" memcpy_4k_ns table=C mode=memcpy)
echo "Kernel $kernel; $mode. Units: ns (guest) and pages."
echo "${pages:-N} COW-shared 4 KiB pages (64 MiB) after fork(); the parent writes one byte to each page its pattern names, the whole loop timed; each row is the median of $(or_dash "$(c reps seq 0)") runs (a fresh fork() each), which differ by up to a few percent even under -icount. Traps: the parent's page faults in the loop (getrusage); no window crosses a page table (2 MiB), and the pages span 33 of them. Never written: pages copied (by a fault or ahead of one) that the pattern did not write. A plain 4 KiB memcpy() costs $(or_dash "$mc") ns here."
echo
echo "| pattern | window | pages written | traps | time ms | pre-copied | never written | speed-up vs window 0 | ns per written page | x memcpy |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
: >"$dat"
for w in $windows; do
	printf '"%s"' "$(win_label "$w")" >>"$dat"
	for wl in $workloads; do
		t=$(c time_ns "$wl" "$w")
		t0=$(c time_ns "$wl" 0)
		pw=$(c per_written_ns "$wl" "$w")
		if [ -z "$t" ]; then
			echo "| $(wl_label "$wl") | $(win_label "$w") | no result | | | | | | | |"
			printf ' -' >>"$dat"
			continue
		fi
		ms=$(awk -v t="$t" 'BEGIN { printf "%.2f", t / 1e6 }')
		echo "| $(wl_label "$wl") | $(win_label "$w") | $(c written "$wl" "$w") | $(c traps "$wl" "$w") | $ms | $(c precopied "$wl" "$w") | $(c wasted "$wl" "$w") | $(ratio "$t0" "$t") | $pw | $(ratio "$pw" "$mc") |"
		printf ' %s' "$(ratio "$t0" "$t")" >>"$dat"
	done
	printf '\n' >>"$dat"
done
echo

# Targets, computed from the rows above.
best_w="" best_t=""
for w in 1 3 7 15 31; do
	t=$(c time_ns seq "$w")
	[ -n "$t" ] || continue
	if [ -z "$best_t" ] || [ "$t" -lt "$best_t" ]; then
		best_t=$t best_w=$w
	fi
done
st0=$(c time_ns seq 0)
sq0=$(c traps seq 0)
echo "Targets (benchmark, not test):"
echo "- sequential, best fixed window ($(or_dash "$best_w")): time $(ratio "$best_t" "$st0")x window 0 (target <= 0.4), traps $(ratio "$(c traps seq "${best_w:-0}")" "$sq0")x (target <= 0.0625);"
echo "- cost per written page, sequential, best fixed window: $(ratio "$(c per_written_ns seq "${best_w:-0}")" "$mc")x a 4 KiB memcpy (target <= 3; window 0: $(ratio "$(c per_written_ns seq 0)" "$mc")x);"
rw=$(c written random a31)
echo "- random, adaptive: time $(ratio "$(c time_ns random a31)" "$(c time_ns random 0)")x window 0 (target <= 1.02), never written $(share "$(c wasted random a31)" "$rw") of the pages written (target <= 5%)."
# Into large folios: the kernel's own 4 KiB copy (table A's copy phase).
kc=$(get "$run" copy_p50 table=B mode=trace class=4k)
for w in 15:16kB 15:64kB 31:64kB a31:64kB; do
	t=$(c time_ns seq "$w")
	[ -n "$t" ] || continue
	echo "- $(win_label "$w"), sequential: time $(ratio "$t" "$st0")x window 0 (target <= 0.40), per written page $(ratio "$(c per_written_ns seq "$w")" "$kc")x the kernel's own 4 KiB copy of $(or_dash "$kc") ns (target <= 1.2);"
done
t=$(c time_ns random a31:64kB)
[ -z "$t" ] || echo "- random, adaptive into 64 KiB folios: time $(ratio "$t" "$(c time_ns random 0)")x window 0 (target <= 1.02), never written $(share "$(c wasted random a31:64kB)" "$(c written random a31:64kB)") (target <= 5%)."
echo
echo "Plot: $rel/table-c.png, speed-up over window 0 per pattern."
echo

[ -n "$workloads" ] || exit 0
command -v gnuplot >/dev/null || exit 0
plot="" col=2
for wl in $workloads; do
	plot="$plot${plot:+, }\"$dat\" using $col$([ $col = 2 ] && echo ':xtic(1)') with linespoints lw 2 title \"$(wl_label "$wl" | sed 's/ (.*//')\""
	col=$((col + 1))
done
gnuplot <<EOF >&2 || note "gnuplot failed: no table-c.png" >&2
set terminal png size 900,500
set output "$outdir/table-c.png"
set title "Pre-copy: speed-up over window 0 ($kernel, ${mode%%:*})"
set xlabel "pre-copy window (pages)"
set ylabel "speed-up (time at window 0 / time)"
set datafile missing "-"
set key top left
set grid
set yrange [0:*]
plot $plot
EOF
