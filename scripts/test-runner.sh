#!/usr/bin/env bash
# Tests of the lab's own runner: a broken guest must fail fast and clearly,
# and a failing TAP stream must count as failed. Prints TAP results.
# Usage: test-runner.sh KERNEL INITRD
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

kernel=$1 initrd=$2
here=$(dirname "$0")
mkdir -p out/runner

# expect_fail NAME JOB TIMEOUT MAX_S WORDS: the guest job must make
# qemu-run.sh exit non-zero within MAX_S seconds, saying WORDS.
expect_fail() {
	local name=$1 job=$2 to=$3 max=$4 words=$5 start el rc=0
	start=$(date +%s)
	TIMEOUT=$to QUIET=1 "$here/qemu-run.sh" "$kernel" "$initrd" "$job" \
		"out/runner/$job" >"out/runner/$job.txt" 2>&1 || rc=$?
	el=$(($(date +%s) - start))
	if [ "$rc" -eq 0 ]; then
		echo "not ok - runner: $name # qemu-run.sh reported success"
	elif [ "$el" -gt "$max" ]; then
		echo "not ok - runner: $name # took ${el}s, limit ${max}s"
	elif ! grep -q "$words" "out/runner/$job.txt"; then
		echo "not ok - runner: $name # no '$words' in out/runner/$job.txt"
	else
		echo "ok - runner: $name (${el}s)"
	fi
}

expect_fail "a guest kernel panic fails the run" selftest-panic 120 120 "panicked"
expect_fail "a guest that never powers off is killed at the timeout" \
	selftest-hang 20 50 "guest hung"

# A TAP stream with a failing sub-test and a crashed program counts both.
fixture='# selftests: x: a
# ok 1 one
# not ok 2 two
not ok 1 x: a
# selftests: x: b
# ok 1 one
not ok 2 x: b # TIMEOUT
ok 3 x: c # SKIP reason'
got=$(printf '%s\n' "$fixture" | "$here/tap-count.sh" /dev/stdin)
if [ "$got" = "2 passed, 2 failed, 1 skipped" ]; then
	echo "ok - runner: failures and crashes in TAP are counted"
else
	echo "not ok - runner: failures and crashes in TAP are counted # got '$got'"
fi
