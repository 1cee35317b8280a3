#!/usr/bin/env bash
# Table B of the report, page size: COW fault latency per page size, from
# the guest's "r table=B" lines (the classes the guest ran).
# Usage: page-size.sh RUNDIR REL
#   RUNDIR  make run's folder (RUNDIR/bench: the whole suite's job)
#   REL     RUNDIR as the report names it, for its plot
# Prints the table (markdown); writes RUNDIR/table-b.dat and table-b.png.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rundir=$1 rel=$2
run=$rundir/bench dat=$rundir/table-b.dat
kernel=$(val "$run" kernel)
mode=$(mode_of "$run")

# label CLASS: the row's name, and its short name for the plot.
label() {
	case $1 in
	4k) echo "4 KiB|4K" ;;
	thp) echo "2 MiB THP, split (copies 4 KiB)|2M THP split" ;;
	thpcopy) echo "2 MiB THP, copied whole|2M THP copy" ;;
	hugetlb2m) echo "2 MiB hugetlb|2M hugetlb" ;;
	hugetlb1g) echo "1 GiB hugetlb|1G hugetlb" ;;
	mthp64) echo "64 KiB mTHP, cow_mthp_mode=split (copies 4 KiB)|64K mTHP split" ;;
	mthp64copy) echo "64 KiB mTHP, copied whole|64K mTHP copy" ;;
	*) echo "$1|$1" ;;
	esac
}

echo "## B. COW fault latency by page size"
echo
echo "Kernel $kernel; $mode. Units: ns (guest); ns/KiB is the user p50 over the page size."
echo "First write to a COW-shared page after fork(); kernel total from the cow:cow_copy tracepoint (sample=1)."
echo
echo "| page | pages written | user p50 | user p99 | kernel total p50 | kernel total p99 | ns per KiB |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
: >"$dat"
for cls in $(values "$run" class table=B); do
	IFS='|' read -r name short <<<"$(label "$cls")"
	skip=$(get "$run" skipped table=B class="$cls")
	if [ -n "$skip" ]; then
		echo "| $name | - | skipped: ${skip//+/ } | | | | |"
		continue
	fi
	p50=$(get "$run" lat_p50 table=B mode=user class="$cls")
	k50=$(get "$run" total_p50 table=B mode=trace class="$cls")
	echo "| $name | $(or_dash "$(get "$run" regions table=B mode=user class="$cls")") | $(or_dash "$p50") | $(or_dash "$(get "$run" lat_p99 table=B mode=user class="$cls")") | $(or_dash "$k50") | $(or_dash "$(get "$run" total_p99 table=B mode=trace class="$cls")") | $(ratio "$p50" "$(get "$run" page_kib table=B class="$cls")") |"
	[ -n "$p50" ] && printf '"%s" %s %s\n' "$short" "$p50" "${k50:-0}" >>"$dat"
done
echo
echo "THP rows: vm.cow_thp_mode=split, where the kernel column is the split alone (class pmd_split; the 4 KiB copy after it is a pte event), and vm.cow_thp_mode=copy (class pmd_copy)."
echo "mTHP rows: one write to each of 256 COW-shared 64 KiB folios; vm.cow_mthp_mode=split copies the 4 KiB written (class pte), copy copies the folio whole (class mthp_o4)."
echo
echo "Plot: $rel/table-b.png (log scale)."
echo

[ -s "$dat" ] || exit 0
command -v gnuplot >/dev/null || exit 0
gnuplot <<EOF >&2 || note "gnuplot failed: no table-b.png" >&2
set terminal png size 900,500
set output "$rundir/table-b.png"
set title "COW write fault latency by page size ($kernel, ${mode%%:*})"
set logscale y
set ylabel "ns (guest), log scale"
set style data histograms
set style histogram clustered
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top left
set grid ytics
plot "$dat" using 2:xtic(1) title "user-measured p50", "" using 3 title "kernel total p50"
EOF
