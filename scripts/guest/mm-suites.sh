#!/usr/bin/env bash
# make mm-suites: the wider upstream mm selftests that touch COW and page
# tables (built by make from the kernel tree, unmodified: the
# mm-suites-initramfs target) on the stock kernel and on the series with
# its knobs off and on: one table of pass/fail/skip per suite and kernel,
# to tell a series bug from a pre-existing failure.
# Usage: mm-suites.sh SERIES_BZIMAGE STOCK_BZIMAGE INITRD OUTDIR TABLE.md
#   INITRD  holds /ksft with the suites (its staging dir's
#           kselftest-list.txt beside it names them)
# Each run is a job.sh kselftest job in OUTDIR/RUN/ (its output in job.txt).
# env: as qemu-run.sh (ACCEL, CPUS, MEM); TIMEOUT per boot (default 900);
#      REPORT_ONLY=1: no boots, the table from the last runs' results.
set -euo pipefail
here=$(dirname "$0")
# shellcheck source=../lib.sh
. "$here/../lib.sh"

series=$1 stock=$2 initrd=$3 dir=$4 report=$5
list=$(dirname "$initrd")/ksft/kselftest-list.txt
[ -f "$list" ] || die "no $list: make mm-suites-initramfs builds it"
progs=$(sed -n 's/^mm://p' "$list")
# NAME|KERNEL|KERNEL COMMAND LINE (sysctl.* sets the knobs at boot)
runs="stock|$stock|
series|$series|
precopy15+thp_copy|$series|sysctl.vm.cow_precopy_pages=15 sysctl.vm.cow_thp_mode=copy
adaptive31|$series|sysctl.vm.cow_precopy_adaptive=1 sysctl.vm.cow_precopy_pages=31"

# vget RUN KEY: KEY of job.sh's verdict of that run.
vget() { sed -n "s/^$2=//p" "$dir/$1/verdict" 2>/dev/null || true; }

# Failed test cases are what the table is for (the stock kernel has some);
# a run fails the target when its guest did not finish or the kernel
# splatted.
failed=""
while IFS='|' read -r name kernel append; do
	step "mm suites: run '$name'"
	mkdir -p "$dir/$name"
	TIMEOUT=${TIMEOUT:-900} APPEND=$append NO_BOOT=${REPORT_ONLY:-0} STREAM=none \
		"$here/job.sh" kselftest "$kernel" "$initrd" "$dir/$name" >"$dir/$name/job.txt" 2>&1 || true
	note "$(vget "$name" counts); finished: $(vget "$name" finished); splat lines: $(vget "$name" splats) ($dir/$name/)"
	[ "$(vget "$name" finished)" = yes ] && [ "$(vget "$name" splats)" = 0 ] ||
		failed="$failed $name"
done <<<"$runs"

# totals RUN PROG: "pass/fail/skip" of that program in that run, from
# the kselftest Totals line (uffd-unit-tests prints its own summary).
totals() {
	awk -v p="$2" '
		{ sub(/\r$/, "") }
		$0 == "# selftests: mm: " p { on = 1; next }
		on && /^# selftests:/ { on = 0 }
		on && /Totals: pass:/ {
			n = split($0, f, /[: ]+/)
			for (i = 1; i < n; i++) v[f[i]] = f[i + 1]
			r = v["pass"] + v["xfail"] "/" v["fail"] + v["error"] "/" v["skip"]
		}
		on && /Userfaults unit tests: pass=/ {
			match($0, /pass=[0-9]+/); ps = substr($0, RSTART + 5, RLENGTH - 5)
			match($0, /skip=[0-9]+/); sk = substr($0, RSTART + 5, RLENGTH - 5)
			match($0, /fail=[0-9]+/); fl = substr($0, RSTART + 5, RLENGTH - 5)
			r = ps "/" fl "/" sk
		}
		END { print (r == "" ? "no totals" : r) }' "$dir/$1/results.out"
}

{
	echo "# Upstream mm selftests: stock vs the series"
	echo
	echo "Tests built unmodified from the series' kernel tree. Each cell: passed (xfail included) / failed / skipped test cases. Runs: stock kernel; the series with all knobs off; with vm.cow_precopy_pages=15 and vm.cow_thp_mode=copy; with vm.cow_precopy_adaptive=1 (max 31)."
	echo
	printf '| suite |'
	while IFS='|' read -r name _ _; do printf ' %s |' "$name"; done <<<"$runs"
	printf '\n| --- |'
	while IFS='|' read -r _ _ _; do printf ' ---: |'; done <<<"$runs"
	printf '\n'
	for p in $progs; do
		printf '| %s |' "$p"
		while IFS='|' read -r name _ _; do
			printf ' %s |' "$(totals "$name" "$p")"
		done <<<"$runs"
		printf '\n'
	done
	echo
	while IFS='|' read -r name _ _; do
		if [ "$(vget "$name" splats)" = 0 ]; then
			echo "- $dir/$name/console.log: no kernel splats"
		else
			echo "- $dir/$name/console.log: **kernel splat**"
		fi
		[ "$(vget "$name" finished)" = yes ] ||
			echo "- $dir/$name: **the guest did not finish** (crash or hang)"
	done <<<"$runs"
} >"$report"
cat "$report"
[ -z "$failed" ] || die "runs that crashed, hung or splatted:$failed" "$report"
