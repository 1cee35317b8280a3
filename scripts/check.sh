#!/usr/bin/env bash
# make check: run the check job in the guest, scan the console, test the
# runner, and print the TAP and the final "N passed, N failed" line.
# Usage: check.sh KERNEL INITRD
# Writes out/check.tap (TAP), out/check.log (console), out/check.out (raw
# results channel). Exit 1 on any failure.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

kernel=$1 initrd=$2
here=$(dirname "$0")
mkdir -p out
host=out/check-host.tap
: >"$host"

finished=1
"$here/qemu-run.sh" "$kernel" "$initrd" check out/check || finished=0
if [ "$finished" = 1 ]; then
	echo "ok - guest: check job finished" >>"$host"
else
	echo "not ok - guest: check job did not finish (crash or hang, see out/check.log)" >>"$host"
fi

if splats=$("$here/splat-scan.sh" out/check.log); then
	echo "ok - console: no kernel splats in out/check.log" >>"$host"
else
	{
		printf '%s\n' "$splats" | head -n 40 | sed 's/^/# /'
		echo "not ok - console: $(printf '%s\n' "$splats" | wc -l) splat line(s) in out/check.log"
	} >>"$host"
fi

if [ "${SKIP_RUNNER_TESTS:-0}" != 1 ]; then
	step "testing the runner itself (a panicking and a hanging guest)"
	"$here/test-runner.sh" "$kernel" "$initrd" | tee -a "$host"
fi

# One TAP stream: the guest's results then the host's, numbered in order.
{
	echo "TAP version 13"
	tr -d '\r' <out/check.out | grep -vE '^(TAP version|1\.\.[0-9]+$|cowlab-done )' || true
	cat "$host"
} | awk '
	/^(ok|not ok)/ {
		n++
		if (sub(/^not ok( [0-9]+| -)?/, "")) $0 = "not ok " n $0
		else { sub(/^ok( [0-9]+| -)?/, ""); $0 = "ok " n $0 }
	}
	{ print }
	END { print "1.." n }' >out/check.tap

printf '\n'
grep -E '^(ok|not ok) ' out/check.tap
summary=$("$here/tap-count.sh" out/check.tap)
printf '\nTAP: out/check.tap, console: out/check.log\n%s\n' "$summary"
case $summary in
*" 0 failed"*) exit 0 ;;
*) exit 1 ;;
esac
