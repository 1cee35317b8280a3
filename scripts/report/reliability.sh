#!/usr/bin/env bash
# make reliability: one table of what the reliability runs found, from
# their outputs already in out/ (no boot): the kselftest cow programs and
# upstream mm/cow under every knob setting from the last
# `make check CONFIG=NAME` (out/check-NAME/, out/check/ for the default
# config), the stress phases from `make stress` (out/stress-NAME.md) and
# the upstream mm suites, stock vs the series (out/mm-suites.md).
# Usage: reliability.sh CONFIG_NAME
# Writes out/reliability.md; says which inputs are missing.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

cfg=$1
sfx=-$cfg
[ "$cfg" = default ] && sfx=""
tap=out/check$sfx/results.tap
log=out/check$sfx/console.log
stress=out/stress$sfx.md
report=out/reliability.md

{
	echo "# Reliability: kernel config '$cfg'"
	echo
	echo "QEMU TCG (no working KVM here): guest times are wall-clock and include emulation."
	echo
	echo "## make check CONFIG=$cfg: kselftest cow and upstream mm/cow"
	echo
	if [ -f "$tap" ]; then
		echo "| program | result | time, s | what it did |"
		echo "| --- | --- | ---: | --- |"
		# Per program: the verdict, the runner's time, and the program's
		# own summary line (fuzz: calls and operations; stress: seconds
		# and operations; harness programs: their Totals line).
		awk '
			{ sub(/\r$/, "") }
			/^# [^#].*: exit [0-9]+ after [0-9]+s$/ {
				t = $0; sub(/.* after /, "", t); sub(/s$/, "", t)
			}
			/^# # [0-9]+ calls, seed / { s = $0; sub(/^# # /, "", s) }
			/^# # [0-9.]+ s, seed / { s = $0; sub(/^# # /, "", s) }
			/^# # Totals: / && s == "" { s = $0; sub(/^# # /, "", s) }
			/^(ok|not ok) [0-9]+ (cow|mm): / {
				res = ($1 == "ok") ? "ok" : "**FAILED**"
				if ($0 ~ /# SKIP/) res = "skipped"
				name = $0; sub(/^(ok|not ok) [0-9]+ /, "", name)
				sub(/ # .*/, "", name)
				printf "| %s | %s | %s | %s |\n", name, res, t, s
				t = ""; s = ""
			}' "$tap"
		echo
		n=$(sed -n 's/^splats=//p' "out/check$sfx/verdict")
		if [ "$n" = 0 ]; then
			echo "Kernel splats in $log: none."
		else
			echo "Kernel splats in $log: **${n:-unknown} line(s)**."
		fi
		echo "Totals: $(grep -a -E '^(ok|not ok) [0-9]+ (cow|mm): ' "$tap" | grep -c '^ok') of $(grep -a -c -E '^(ok|not ok) [0-9]+ (cow|mm): ' "$tap") programs passed."
	else
		echo "Not run: no $tap (run \`make check CONFIG=$cfg\`)."
	fi
	echo
	if [ -f "$stress" ]; then
		sed 's/^## Stress: /## make stress: /' "$stress"
	else
		echo "## make stress"
		echo
		echo "Not run: no $stress (run \`make stress CONFIG=$cfg\`)."
	fi
	echo
	if [ -f out/mm-suites.md ]; then
		sed 's/^# /## make mm-suites: /' out/mm-suites.md
	else
		echo "## make mm-suites"
		echo
		echo "Not run: no out/mm-suites.md (run \`make mm-suites\`)."
	fi
} >"$report"
note "wrote $report"
