#!/usr/bin/env bash
# Table F of the report, overhead: the cost of a 4 KiB COW fault on the
# stock kernel and on the series per vm.cow_latency_sample setting, over
# every boot of make run (the settings are the ones the guest ran).
# Usage: overhead.sh RUNDIR
#   RUNDIR  make run's folder: f-series.out and f-stock.out (the samples),
#           bench/ and stock1/ (the kernels and modes)
# Prints the table (markdown).
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rundir=$1
series=$rundir/bench stock=$rundir/stock1
fs=$rundir/f-series.out fk=$rundir/f-stock.out

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
# settings FILE: the sample= values, in the order the guest ran them.
settings() { awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^sample=/ && !seen[$i]++) print substr($i, 8) }' "$1"; }

s0=$(fstat "$fk" stock | cut -d' ' -f2)
echo "## F. Overhead of the instrumentation"
echo
echo "Series: $(val "$series" kernel); stock: $(val "$stock" kernel) (same config, no series). Modes: series $(mode_of "$series"); stock $(mode_of "$stock")."
echo "Units: ns (guest) per 4 KiB COW fault: a loop writing one byte to each of $(get "$series" regions table=F sample=0) COW-shared pages, timed as a whole, divided by the pages."
echo "Each kernel booted $(boots "$fs") times, $(reps "$fs") repetitions a boot, settings interleaved. Guest time varies by a few percent from boot to boot even under -icount (memory layout, interrupt interleaving), so compare medians, and read the within-boot column for the cost of sampling."
echo
echo "| kernel | vm.cow_latency_sample | samples | ns per fault, median | min - max | vs stock (medians) | vs sample=0 in the same boot and repetition (median) |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
read -r n med lo hi <<<"$(fstat "$fk" stock)"
echo "| stock | - | $n | $med | $lo - $hi | - | - |"
for s in $(settings "$fs"); do
	read -r n med lo hi <<<"$(fstat "$fs" "$s")"
	echo "| series | $s | $n | $med | $lo - $hi | $(pct "$med" "$s0") | $(paired "$fs" "$s") |"
done
echo
echo "Targets (benchmark, not test): sample=0 within 0.5% of stock, sample=64 within 1%, sample=1 within 5%."
