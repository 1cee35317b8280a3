#!/usr/bin/env bash
# Table D of the report, THP modes: vm.cow_thp_mode split vs copy, and
# split with pre-copy, from the guest's "r table=D" lines (the settings the
# guest ran).
# Usage: thp-modes.sh RUNDIR REL
#   RUNDIR  make run's folder (RUNDIR/bench: the whole suite's job)
#   REL     RUNDIR as the report names it, for its plot
# Prints the table (markdown); writes RUNDIR/table-d.dat and table-d.png.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rundir=$1 rel=$2
run=$rundir/bench outdir=$rundir
kernel=$(val "$run" kernel)
mode=$(mode_of "$run")
dat=$outdir/table-d.dat
settings=$(values "$run" setting table=D)

label() {
	case $1 in
	cow_thp_mode=split) echo "split" ;;
	cow_thp_mode=copy) echo "copy" ;;
	*adaptive=1) echo "split + adaptive pre-copy (max 15)" ;;
	*precopy_pages=15) echo "split + pre-copy 15" ;;
	*) echo "$1" ;;
	esac
}

# d KEY SETTING: KEY of the table D line of that setting.
d() { get "$run" "$1" table=D "setting=$2"; }

n=$(d regions cow_thp_mode=split)
echo "## D. THP COW modes: split vs copy"
echo
echo "Kernel $kernel; $mode. Units: ns (guest), KiB."
echo "${n:-N} PMD-mapped 2 MiB THPs are COW-shared with a forked child. The parent writes one byte to each (first write), then every other 4 KiB page of each, in order (together: the rewrite of 2 MiB). Per 2 MiB region: traps are the parent's page faults, extra memory is the growth of AnonPages, PMD-mapped counts the regions still mapped by a PMD (smaps AnonHugePages)."
echo
echo "| setting | first write p50 | first write p99 | rewrite of 2 MiB p50 | rewrite p99 | traps, first write | traps, rewrite | extra KiB after first write | extra KiB after rewrite | PMD-mapped after first write | after rewrite | read pass ns/page |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
: >"$dat"
i=0
for s in $settings; do
	skip=$(d skipped "$s")
	if [ -n "$skip" ]; then
		echo "| $(label "$s") | skipped: ${skip//+/ } | | | | | | | | | | |"
		continue
	fi
	if [ -z "$(d first_p50 "$s")" ]; then
		echo "| $(label "$s") | no result | | | | | | | | | | |"
		continue
	fi
	row="| $(label "$s")"
	for k in first_p50 first_p99 rewrite_p50 rewrite_p99 first_traps \
		rewrite_traps first_extra_kb rewrite_extra_kb; do
		row="$row | $(or_dash "$(d "$k" "$s")")"
	done
	echo "$row | $(d pmd_first "$s")/$n | $(d pmd_rewrite "$s")/$n | $(or_dash "$(d read_ns_per_page "$s")") |"
	# One block per setting: first-write latency against its CDF.
	[ $i -gt 0 ] && printf '\n\n' >>"$dat"
	printf '# %s\n' "$(label "$s")" >>"$dat"
	d first_all "$s" | tr ',' '\n' | sort -n |
		awk '{ v[NR] = $1 } END { for (j = 1; j <= NR; j++) print v[j], j / NR }' >>"$dat"
	i=$((i + 1))
done
echo
sp99=$(d first_p99 cow_thp_mode=split)
cp99=$(d first_p99 cow_thp_mode=copy)
crw=$(d rewrite_p50 cow_thp_mode=copy)
fx=cow_thp_mode=split,cow_precopy_pages=15
ad=$fx,cow_precopy_adaptive=1
echo "Targets (benchmark, not test): split first-write p99 <= 1/20 of copy's: split/copy = $(ratio "$sp99" "$cp99")," \
	"split + pre-copy $(ratio "$(d first_p99 "$fx")" "$cp99") (fixed), $(ratio "$(d first_p99 "$ad")" "$cp99") (adaptive);" \
	"split + pre-copy rewrite p50 <= 1.2x copy's: fixed $(ratio "$(d rewrite_p50 "$fx")" "$crw")x," \
	"adaptive $(ratio "$(d rewrite_p50 "$ad")" "$crw")x."
echo
echo "The guest enables every anonymous mTHP size, so after a split, pre-copy copies the rest of the huge page into 64 KiB folios (patch 0010)."
echo
echo "Read pass: one byte of every 4 KiB page of all regions in a scattered order after the rewrite; it shows the TLB reach that PMD mappings keep only with ACCEL=kvm: under -icount a TLB miss costs no guest time."
echo
echo "Plot: $rel/table-d.png, the distribution of first-write latencies per setting."
echo

[ $i -gt 0 ] || exit 0
command -v gnuplot >/dev/null || exit 0
plot=""
j=0
for s in $settings; do
	[ -n "$(d first_p50 "$s")" ] || continue
	plot="$plot${plot:+, }\"$dat\" index $j using 1:2 with steps lw 2 title \"$(label "$s")\""
	j=$((j + 1))
done
gnuplot <<EOF >&2 || note "gnuplot failed: no table-d.png" >&2
set terminal png size 900,500
set output "$outdir/table-d.png"
set title "First write to a COW-shared 2 MiB THP ($kernel, ${mode%%:*})"
set logscale x
set xlabel "latency, ns (guest), log scale"
set ylabel "fraction of first writes"
set yrange [0:1.05]
set key bottom right
set grid
plot $plot
EOF
