#!/usr/bin/env bash
# make stress: the cow stress program's long run in the guest: plain, then
# with fail_page_alloc and then failslab injecting allocation failures into
# it (those need CONFIG=debug's fault injection; else they are skipped).
# The job and its verdict are job.sh's; this adds the table.
# Usage: stress.sh KERNEL INITRD OUTDIR TABLE.md
# env: STRESS_SECONDS (default 60) per phase; STRESS_CONFIG (the config's
#      name, for the table); REPORT_ONLY=1: no boot, the last run's results.
# Exit 1 on a failed phase, a crash or a kernel splat.
set -euo pipefail
here=$(dirname "$0")
# shellcheck source=../lib.sh
. "$here/../lib.sh"
# shellcheck source=../report/lib.sh
. "$here/../report/lib.sh"

kernel=$1 initrd=$2 dir=$3 table=$4
secs=${STRESS_SECONDS:-60}
# Three phases, each the program's two modes (async, eager) of secs each,
# under TCG, plus boot and slack.
rc=0
APPEND="cowlab.stress=$secs" TIMEOUT=$((3 * (2 * secs + 120) + 120)) \
	NO_BOOT=${REPORT_ONLY:-0} "$here/job.sh" stress "$kernel" "$initrd" "$dir" || rc=$?
tap=$dir/results.tap

# The table: each phase's verdict, the program's own summary lines (one a
# mode: seconds, seed, mode, operations), the failures injected.
{
	echo "## Stress: cow stress program, ${secs} s a mode (async, eager) in each phase"
	echo
	echo "Kernel $(val "$dir" kernel), config ${STRESS_CONFIG:-default}; $(mode_of "$dir"); console: $dir/console.log. Failures injected: allocations failed by fail_page_alloc / failslab (1%, sleeping allocations included, only in the stress process and its children); the program tolerates and counts ENOMEM (enomem_tolerated) and fails on any wrong byte."
	echo
	echo "| phase | result | failures injected | the program's summary |"
	echo "| --- | --- | ---: | --- |"
	awk '
		/^# # [0-9.]+ s, seed / { sub(/^# # /, ""); last = (last == "" ? "" : last "; ") $0 }
		/^(ok|not ok) [0-9]+ stress: / {
			res = ($1 == "ok") ? "ok" : "FAILED"
			if ($0 ~ /# SKIP/) res = "skipped"
			name = $0; sub(/^(ok|not ok) [0-9]+ stress: /, "", name)
			sub(/ # .*/, "", name); sub(/,.*/, "", name)
			print name "\t" res "\t" last; last = ""
		}' "$tap" |
		while IFS=$'\t' read -r name res summary; do
			inj=$(get "$dir" injected "stress=${name%% *}")
			echo "| $name | $res | ${inj:--} | ${summary:--} |"
		done
	echo
	grep -E '^(ok|not ok) [0-9]+ (guest|console): ' "$tap" | sed 's/^\(ok\|not ok\) [0-9]* /- \1 - /'
	echo "- OOM kills in the console: $(grep -c -E 'Out of memory|oom-kill' "$dir/console.log" || true)"
} >"$table"

printf '\n'
cat "$table"
printf '\nTAP: %s, table: %s\n%s\n' "$tap" "$table" "$(sed -n 's/^counts=//p' "$dir/verdict")"
exit "$rc"
