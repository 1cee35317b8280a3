#!/usr/bin/env bash
# Turn the results of the `make run` guest jobs into the report.
# Usage: report.sh SERIES_PREFIX STOCK_PREFIX REPORT.md
#   *_PREFIX  qemu-run.sh output prefixes (PREFIX.out results, PREFIX.meta)
# Writes REPORT.md and gnuplot PNGs beside it; prints the report.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=report-lib.sh
. "$(dirname "$0")/report-lib.sh"

series=$1 stock=$2 report=$3
outdir=$(dirname "$report")
for p in "$series" "$stock"; do
	[ -f "$p.out" ] || die "no results $p.out: did the guest run?"
done

# awk: median(x, n) of x[0..n), sorting x in place.
AWK_MEDIAN='
function median(x, n,    i, j, t) {
	for (i = 0; i < n; i++) for (j = i + 1; j < n; j++)
		if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
	return n % 2 ? x[(n - 1) / 2] : (x[n / 2 - 1] + x[n / 2]) / 2
}'

# fstat FILE SAMPLE: "N MEDIAN MIN MAX" of per_fault_ns over the F lines
# of that sampling setting.
fstat() {
	awk -v want="$2" "$AWK_MEDIAN"'
		{ ok = 0; v = "" }
		{ for (i = 1; i <= NF; i++) { if ($i == "sample=" want) ok = 1
		  if ($i ~ /^per_fault_ns=/) v = substr($i, 14) } }
		ok && v != "" { x[n++] = v + 0 }
		END {
			if (!n) { print "0 - - -"; exit }
			m = int(median(x, n))
			print n, m, x[0], x[n - 1]
		}' "$1"
}

# paired FILE SAMPLE: median over (boot, rep) of per_fault(SAMPLE) /
# per_fault(0) - 1, as a signed percentage. Boots are told apart by the
# rep counter restarting.
paired() {
	[ "$2" = 0 ] && { echo "-"; return; }
	awk -v want="$2" "$AWK_MEDIAN"'
		{ s = ""; r = ""; v = ""
		  for (i = 1; i <= NF; i++) { if ($i ~ /^sample=/) s = substr($i, 8)
		    if ($i ~ /^rep=/) r = substr($i, 5)
		    if ($i ~ /^per_fault_ns=/) v = substr($i, 14) }
		  if (r == 1 && s == "0") boot++
		  key = boot "/" r
		  if (s == "0") base[key] = v
		  if (s == want && (key in base)) x[n++] = (v - base[key]) * 100 / base[key] }
		END {
			if (!n) { print "-"; exit }
			printf "%+.2f%%\n", median(x, n)
		}' "$1"
}

boots() { grep -cE 'sample=(0|stock) rep=1 ' "$1" || true; }
reps() { sed -n 's/.* rep=\([0-9]*\) .*/\1/p' "$1" | sort -n | tail -n 1; }

tables() {
	u50=$(get "$series" lat_p50 table=B mode=user class=4k)
	u99=$(get "$series" lat_p99 table=B mode=user class=4k)
	echo "## A. Anatomy of one 4 KiB COW fault"
	echo
	echo "Kernel $kernel; $mode. Units: ns (guest). A process writes one byte to each of 2048 COW-shared 4 KiB pages."
	echo "User side: the write timed in the process with vm.cow_latency_sample=0 (timer overhead subtracted)."
	echo "Kernel side: the same faults with vm.cow_latency_sample=1, read from the cow:cow_copy tracepoint."
	echo
	echo "| part | p50 ns | p99 ns | share of the user p50 |"
	echo "| --- | ---: | ---: | ---: |"
	echo "| write fault seen by the process | $(or_dash "$u50") | $(or_dash "$u99") | 100% |"
	for ph in alloc copy map total; do
		p50=$(get "$series" "${ph}_p50" table=B mode=trace class=4k)
		p99=$(get "$series" "${ph}_p99" table=B mode=trace class=4k)
		case $ph in
		alloc) label="kernel: alloc (folio allocation + memcg charge)" ;;
		copy) label="kernel: copy (4 KiB)" ;;
		map) label="kernel: map (PTL, PTE switch, rmap, TLB flush)" ;;
		total) label="kernel: total" ;;
		esac
		echo "| $label | $(or_dash "$p50") | $(or_dash "$p99") | $(share "$p50" "$u50") |"
	done
	t50=$(get "$series" total_p50 table=B mode=trace class=4k)
	rest=$(minus "$u50" "$t50")
	printf '"4 KiB COW fault p50" %s %s %s %s\n' \
		"$(get "$series" alloc_p50 table=B mode=trace class=4k)" \
		"$(get "$series" copy_p50 table=B mode=trace class=4k)" \
		"$(get "$series" map_p50 table=B mode=trace class=4k)" "$rest" >"$outdir/table-a.dat"
	echo "| trap, entry, fault walk, return (user p50 - kernel total p50) | $rest | - | $(share "$rest" "$u50") |"
	echo
	echo "Plot: table-a.png. Each p50 is taken on its own, so the parts need not add up to the total exactly."
	echo

	echo "## B. COW fault latency by page size"
	echo
	echo "Kernel $kernel; $mode. Units: ns (guest); ns/KiB is the user p50 over the page size."
	echo "First write to a COW-shared page after fork(); kernel total from the cow:cow_copy tracepoint (sample=1)."
	echo
	echo "| page | pages written | user p50 | user p99 | kernel total p50 | kernel total p99 | ns per KiB |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	: >"$outdir/table-b.dat"
	for row in "4k|4 KiB|4|4K" "thp|2 MiB THP, split (copies 4 KiB)|2048|2M THP split" \
		"thpcopy|2 MiB THP, copied whole|2048|2M THP copy" \
		"hugetlb2m|2 MiB hugetlb|2048|2M hugetlb" "hugetlb1g|1 GiB hugetlb|1048576|1G hugetlb"; do
		IFS='|' read -r cls label kib short <<<"$row"
		skip=$(get "$series" skipped table=B class="$cls")
		if [ -n "$skip" ]; then
			echo "| $label | - | skipped: ${skip//+/ } | | | | |"
			continue
		fi
		n=$(get "$series" regions table=B mode=user class="$cls")
		p50=$(get "$series" lat_p50 table=B mode=user class="$cls")
		p99=$(get "$series" lat_p99 table=B mode=user class="$cls")
		k50=$(get "$series" total_p50 table=B mode=trace class="$cls")
		k99=$(get "$series" total_p99 table=B mode=trace class="$cls")
		echo "| $label | $(or_dash "$n") | $(or_dash "$p50") | $(or_dash "$p99") | $(or_dash "$k50") | $(or_dash "$k99") | $(ratio "$p50" "$kib") |"
		[ -n "$p50" ] && printf '"%s" %s %s\n' "$short" "$p50" "${k50:-0}" >>"$outdir/table-b.dat"
	done
	echo
	echo "THP rows: vm.cow_thp_mode=split, where the kernel column is the split alone (class pmd_split; the 4 KiB copy after it is a pte event), and vm.cow_thp_mode=copy (class pmd_copy)."
	echo
	echo "Plot: table-b.png (log scale)."
	echo

	"$(dirname "$0")/report-c.sh" "$series" "$outdir"
	"$(dirname "$0")/report-d.sh" "$series" "$outdir"
	"$(dirname "$0")/report-e.sh" "$series" "$outdir"
	"$(dirname "$0")/report-g.sh" "$series" "$outdir"

	fs=$outdir/run-f-series.out
	fk=$outdir/run-f-stock.out
	s0=$(fstat "$fk" stock | cut -d' ' -f2)
	echo "## F. Overhead of the instrumentation"
	echo
	echo "Series: $kernel; stock: $skernel (same config, no series). Modes: series $mode; stock $smode."
	echo "Units: ns (guest) per 4 KiB COW fault: a loop writing one byte to each of $(get "$series" regions table=F sample=0) COW-shared pages, timed as a whole, divided by the pages."
	echo "Each kernel booted $(boots "$fs") times, $(reps "$fs") repetitions a boot, settings interleaved. Guest time varies by a few percent from boot to boot even under -icount (memory layout, interrupt interleaving), so compare medians, and read the within-boot column for the cost of sampling."
	echo
	echo "| kernel | vm.cow_latency_sample | samples | ns per fault, median | min - max | vs stock (medians) | vs sample=0 in the same boot and repetition (median) |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
	read -r n med lo hi <<<"$(fstat "$fk" stock)"
	echo "| stock | - | $n | $med | $lo - $hi | - | - |"
	for s in 0 64 1; do
		read -r n med lo hi <<<"$(fstat "$fs" "$s")"
		echo "| series | $s | $n | $med | $lo - $hi | $(pct "$med" "$s0") | $(paired "$fs" "$s") |"
	done
	echo
	echo "Targets (benchmark, not test): sample=0 within 0.5% of stock, sample=64 within 1%, sample=1 within 5%."
}

kernel=$(val "$series" kernel)
skernel=$(val "$stock" kernel)
mode=$(mode_of "$series")
smode=$(mode_of "$stock")
has_series=$(get "$series" per_fault_ns table=F sample=0)

{
	echo "# cowlab report"
	echo
	echo "Kernel under test: $(val "$series" version)"
	echo
	echo "Mode: $mode; $(val "$series" cpus) vCPUs, $(($(val "$series" mem_total_kb) / 1024)) MiB."
	echo
	echo "## Smoke: what the kernel under test offers"
	echo
	echo "| item | value |"
	echo "| --- | --- |"
	echo "| kernel | $kernel |"
	echo "| /init reached after (guest s) | $(val "$series" uptime_at_job_s) |"
	echo "| clocksource | $(val "$series" clocksource) |"
	echo "| THP enabled | $(val "$series" thp_enabled) |"
	echo "| THP sizes | $(val "$series" thp_sizes) |"
	tr -d '\r' <"$series.out" | sed -n 's/^hugetlb_\([0-9]*kB\)=\(.*\)/| hugetlb \1 pages reserved | \2 |/p'
	echo "| swap (KiB) | $(val "$series" swap_kb) |"
	tr -d '\r' <"$series.out" | sed -n 's/^knob_\([a-z_]*\)=\(.*\)/| vm.\1 | \2 |/p'
	tr -d '\r' <"$series.out" | sed -n 's/^vmstat_\([a-z_]*\)=\(.*\)/| vmstat \1 | \2 |/p'
	echo "| debugfs cow/latency | $(val "$series" debugfs_cow_latency) |"
	echo

	if [ -z "$has_series" ]; then
		echo "The kernel under test has no COW instrumentation: tables A to D and F need the series."
	else
		tables
	fi
} >"$report"



if [ -s "$outdir/table-a.dat" ] && command -v gnuplot >/dev/null; then
	gnuplot <<EOF || note "gnuplot failed: no table-a.png"
set terminal png size 900,260
set output "$outdir/table-a.png"
set title "Anatomy of a 4 KiB COW fault, p50 ns ($kernel, ${mode%%:*})"
set style data histograms
set style histogram rowstacked
set style fill solid 0.8 border -1
set boxwidth 0.5
set key outside right
set grid ytics
set ylabel "ns (guest)"
set yrange [0:*]
plot "$outdir/table-a.dat" using 2:xtic(1) title "alloc", "" using 3 title "copy", "" using 4 title "map", "" using 5 title "trap/entry/walk/return"
EOF
fi

if [ -s "$outdir/table-b.dat" ] && command -v gnuplot >/dev/null; then
	gnuplot <<EOF || note "gnuplot failed: no table-b.png"
set terminal png size 900,500
set output "$outdir/table-b.png"
set title "COW write fault latency by page size ($kernel, ${mode%%:*})"
set logscale y
set ylabel "ns (guest), log scale"
set style data histograms
set style histogram clustered
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top left
set grid ytics
plot "$outdir/table-b.dat" using 2:xtic(1) title "user-measured p50", "" using 3 title "kernel total p50"
EOF
fi

printf '\n'
cat "$report"
printf '\nreport: %s\n' "$report"
