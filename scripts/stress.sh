#!/usr/bin/env bash
# make stress: the cow stress program's long run in the guest: plain, then
# with fail_page_alloc and then failslab injecting allocation failures into
# it (those need CONFIG=debug's fault injection; else they are skipped).
# Usage: stress.sh KERNEL INITRD
# env: STRESS_SECONDS (default 60) per phase; REPORT_ONLY=1: no boot.
# Writes out/stress.tap, out/stress.log (console), out/stress.md (table).
# Exit 1 on a failed phase, a crash or a kernel splat.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=report-lib.sh
. "$(dirname "$0")/report-lib.sh"

kernel=$1 initrd=$2
here=$(dirname "$0")
secs=${STRESS_SECONDS:-60}
mkdir -p out
# Three phases of secs each, under TCG, plus boot and slack. REPORT_ONLY=1
# remakes the table from the last run.
if [ "${REPORT_ONLY:-0}" != 1 ]; then
	APPEND="cowlab.stress=$secs" TIMEOUT=$((3 * (secs + 120) + 120)) \
		"$here/qemu-run.sh" "$kernel" "$initrd" stress out/stress || true
fi
finished=0
tr -d '\r' <out/stress.out | grep -q '^cowlab-done job=stress rc=0' && finished=1

{
	tr -d '\r' <out/stress.out | grep -vE '^(cowlab-done |r )' || true
	if [ "$finished" = 1 ]; then
		echo "ok - guest: stress job finished"
	else
		echo "not ok - guest: stress job did not finish (crash or hang, see out/stress.log)"
	fi
	if splats=$("$here/splat-scan.sh" out/stress.log); then
		echo "ok - console: no kernel splats in out/stress.log"
	else
		printf '%s\n' "$splats" | head -n 40 | sed 's/^/# /'
		echo "not ok - console: $(printf '%s\n' "$splats" | wc -l) splat line(s) in out/stress.log"
	fi
} >out/stress.tap

# The table: each phase's verdict, the program's own summary line (its
# "stress:" line: seconds, seed, operations), the failures injected.
{
	echo "## Stress: cow stress program, ${secs} s a phase"
	echo
	echo "Kernel $(val out/stress kernel), config ${STRESS_CONFIG:-default}; $(mode_of out/stress); console: out/stress.log. Failures injected: allocations failed by fail_page_alloc / failslab (1%, sleeping allocations included, only in the stress process and its children); the program tolerates and counts ENOMEM (enomem_tolerated) and fails on any wrong byte."
	echo
	echo "| phase | result | failures injected | the program's summary |"
	echo "| --- | --- | ---: | --- |"
	awk '
		/^# # [0-9.]+ s, seed / { sub(/^# # /, ""); last = $0 }
		/^(ok|not ok) [0-9]+ stress: / {
			res = ($1 == "ok") ? "ok" : "FAILED"
			if ($0 ~ /# SKIP/) res = "skipped"
			name = $0; sub(/^(ok|not ok) [0-9]+ stress: /, "", name)
			sub(/ # .*/, "", name); sub(/,.*/, "", name)
			print name "\t" res "\t" last; last = ""
		}' out/stress.tap |
		while IFS=$'\t' read -r name res summary; do
			inj=$(tr -d '\r' <out/stress.out | sed -n "s/^r stress=${name%% *} injected=//p")
			echo "| $name | $res | ${inj:--} | ${summary:--} |"
		done
	echo
	grep -E '^(ok|not ok) - ' out/stress.tap | sed 's/^/- /'
	echo "- OOM kills in the console: $(grep -c -E 'Out of memory|oom-kill' out/stress.log || true)"
} >out/stress.md

cat out/stress.md
summary=$("$here/tap-count.sh" out/stress.tap)
printf '\nTAP: out/stress.tap, table: out/stress.md\n%s\n' "$summary"
case $summary in
*" 0 failed"*) exit 0 ;;
*) exit 1 ;;
esac
