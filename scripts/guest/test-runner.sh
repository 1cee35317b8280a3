#!/usr/bin/env bash
# Tests of the lab's own runner (scripts/guest/job.sh): a broken guest must
# fail fast and clearly, a kernel splat must fail a job whose tests pass,
# make qemu CMD= must return the command's status, a filtered kselftest
# must run only what it names, and a failing TAP stream must count as
# failed. Prints TAP results.
# Usage: test-runner.sh KERNEL INITRD OUTDIR
set -euo pipefail
here=$(dirname "$0")
# shellcheck source=../lib.sh
. "$here/../lib.sh"

kernel=$1 initrd=$2 dir=$3
mkdir -p "$dir"
step "testing the runner itself (panic, hang, splat, CMD=, TESTS=)"
# One cheap program and one of its cases (a variant of its table) for the
# jobs that run kselftests.
cheap=snapshot_errors cheap_args="-v len_zero"

# job NAME JOB [VAR=VALUE...]: run JOB through job.sh into DIR/NAME; sets
# rc, el (seconds) and txt (what job.sh printed).
job() {
	local name=$1 gjob=$2 start
	shift 2
	txt=$dir/$name.txt
	start=$(date +%s)
	rc=0
	env GUEST_TESTS= GUEST_ARGS= GUEST_CMD= APPEND= STREAM=none "$@" \
		"$here/job.sh" "$gjob" "$kernel" "$initrd" "$dir/$name" >"$txt" 2>&1 || rc=$?
	el=$(($(date +%s) - start))
}

# expect_fail NAME JOB MAX_S WORDS [VAR=VALUE...]: the job (in DIR/JOB) must
# fail within MAX_S seconds, saying WORDS.
expect_fail() {
	local name=$1 gjob=$2 max=$3 words=$4
	shift 4
	job "$gjob" "$gjob" "$@"
	if [ "$rc" -eq 0 ]; then
		echo "not ok - runner: $name # job.sh reported success"
	elif [ "$el" -gt "$max" ]; then
		echo "not ok - runner: $name # took ${el}s, limit ${max}s"
	elif ! grep -q "$words" "$txt"; then
		echo "not ok - runner: $name # no '$words' in $txt"
	else
		echo "ok - runner: $name (${el}s)"
	fi
}

expect_fail "a guest kernel panic fails the run" selftest-panic 120 "panicked" TIMEOUT=120
expect_fail "a guest that never powers off is killed at the timeout" \
	selftest-hang 50 "guest hung" TIMEOUT=20
expect_fail "a kernel splat fails a kselftest job whose tests pass" selftest-warn 120 \
	"splat line(s)" TIMEOUT=120 GUEST_TESTS=$cheap GUEST_ARGS="$cheap_args"

job cmd-true cmd TIMEOUT=120 GUEST_CMD=true
r_true=$rc
job cmd-false cmd TIMEOUT=120 GUEST_CMD=false
if [ "$r_true" = 0 ] && [ "$rc" = 1 ]; then
	echo "ok - runner: make qemu CMD= returns the command's status (true: 0, false: 1)"
else
	echo "not ok - runner: make qemu CMD= returns the command's status # true: $r_true, false: $rc (see $dir/cmd-*.txt)"
fi

# TESTS=cheap TEST_ARGS='-v variant': one program, and only that case of it.
job filtered kselftest TIMEOUT=120 GUEST_TESTS=$cheap GUEST_ARGS="$cheap_args"
progs=$(grep -E '^(ok|not ok) [0-9]+ [a-z]+: ' "$dir/filtered/results.tap" |
	grep -vE '^(ok|not ok) [0-9]+ (guest|console): ' | sed 's/^[a-z ]*[0-9]* //; s/ #.*//' | tr '\n' ,)
subs=$(grep -c '^# \(ok\|not ok\) [0-9]' "$dir/filtered/results.tap" || true)
if [ "$rc" = 0 ] && [ "$progs" = "cow: $cheap," ] && [ "$subs" = 1 ]; then
	echo "ok - runner: TESTS=$cheap TEST_ARGS='$cheap_args' runs only that (${el}s)"
else
	echo "not ok - runner: TESTS=$cheap TEST_ARGS='$cheap_args' runs only that # exit $rc, programs '$progs', $subs sub-test(s) (see $txt)"
fi

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
