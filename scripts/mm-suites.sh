#!/usr/bin/env bash
# The wider upstream mm selftests that touch COW and page tables, built
# unmodified from the kernel tree, on the stock kernel and on the series
# with its knobs off and on: one table of pass/fail/skip per suite and
# kernel, to tell a series bug from a pre-existing failure.
# Usage: mm-suites.sh SRC OBJ SERIES_BZIMAGE STOCK_BZIMAGE
#   SRC, OBJ  the series' kernel tree and build directory (headers,
#             gen_init_cpio)
# Writes out/mm-suites.md and, per run, out/mm-suites-RUN.{out,log}.
# env: as qemu-run.sh (ACCEL, CPUS, MEM); TIMEOUT per boot (default 900).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

src=$1 obj=$2 series=$3 stock=$4
here=$(dirname "$0")
progs="cow madv_populate ksm_functional_tests mremap_test mremap_dontunmap
uffd-unit-tests gup_longterm soft-dirty pagemap_ioctl split_huge_page_test
mkdirty transhuge-stress"
# transhuge-stress runs until killed unless given a duration; bound it as
# run_vmtests.sh does (-d 20), and to a 512 MiB region rather than all of
# guest memory, so that one pass takes seconds under TCG.
THS_ARGS=${THS_ARGS:--d 20 512}
# NAME|KERNEL|KERNEL COMMAND LINE (sysctl.* sets the knobs at boot)
runs="stock|$stock|
series|$series|
precopy15+thp_copy|$series|sysctl.vm.cow_precopy_pages=15 sysctl.vm.cow_thp_mode=copy
adaptive31|$series|sysctl.vm.cow_precopy_adaptive=1 sysctl.vm.cow_precopy_pages=31"
stage=build/guest-mm-suites
report=out/mm-suites.md

specs=()
for p in $progs; do specs+=("mm:$p"); done
"$here/ksft-build.sh" "$src" "$obj" "$stage/ksft" "${specs[@]}"
# The guest runner takes no arguments: a wrapper of the same name passes them.
mv "$stage/ksft/mm/transhuge-stress" "$stage/ksft/mm/transhuge-stress.bin"
printf '#!/bin/sh\nexec ./transhuge-stress.bin %s\n' "$THS_ARGS" \
	>"$stage/ksft/mm/transhuge-stress"
chmod +x "$stage/ksft/mm/transhuge-stress"
"$here/initramfs.sh" "$obj/usr/gen_init_cpio" "$stage/initramfs.cpio" \
	"/ksft:$stage/ksft"

failed=""
# REPORT_ONLY=1: only rebuild the table from the results already in out/.
[ "${REPORT_ONLY:-0}" = 1 ] && runs_to_boot="" || runs_to_boot=$runs
while IFS='|' read -r name kernel append; do
	[ -n "$name" ] || continue
	if ! TIMEOUT=${TIMEOUT:-900} APPEND=$append "$here/qemu-run.sh" \
		"$kernel" "$stage/initramfs.cpio" kselftest "out/mm-suites-$name"; then
		note "run '$name' did not finish cleanly (log: out/mm-suites-$name.log)"
		failed="$failed $name"
	fi
done <<<"$runs_to_boot"

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
		END { print (r == "" ? "no totals" : r) }' "out/mm-suites-$1.out"
}

{
	echo "# Upstream mm selftests: stock vs the series"
	echo
	echo "Kernel tree $(basename "$src"), tests built from it unmodified. Each cell: passed (xfail included) / failed / skipped test cases. Runs: stock kernel; the series with all knobs off; with vm.cow_precopy_pages=15 and vm.cow_thp_mode=copy; with vm.cow_precopy_adaptive=1 (max 31)."
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
	for log in out/mm-suites-*.log; do
		if "$here/splat-scan.sh" "$log" >/dev/null; then
			echo "- $log: no kernel splats"
		else
			echo "- $log: **kernel splat**"
		fi
	done
} >"$report"
cat "$report"
[ -z "$failed" ] || die "runs that did not finish:$failed" "$report"
