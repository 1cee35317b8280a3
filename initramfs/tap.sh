# shellcheck shell=sh
# The TAP test runner (sourced by guest.sh): kselftest programs and the
# upstream mm/cow suite under each knob setting, as kselftest-style TAP.

T=0
# tap STATUS NAME [DIRECTIVE]: one top-level TAP result.
tap() {
	T=$((T + 1))
	echo "$1 $T $2${3:+ # $3}"
}

# run_prog NAME TIMEOUT DIR CMD...: run one test program, its output
# indented as a kselftest sub-stream, and report it as one TAP result.
run_prog() {
	name=$1 to=$2 dir=$3
	shift 3
	echo "# selftests: $name"
	t0=$(uptime_s)
	# A watchdog shell rather than busybox timeout: timeout's watcher
	# process forks and wakes every second, and its first writes after
	# the fork are COW faults that land in the global /proc/vmstat
	# counters the tests read. This one is forked before the program
	# starts and then only sleeps; the shell only waits.
	(
		cd "$dir" || exit 1
		rm -f /tmp/pid
		(sleep "$to" && kill -KILL "$(cat /tmp/pid)") >/dev/null 2>&1 &
		dog=$!
		"$@" </dev/null 2>&1 &
		echo $! >/tmp/pid
		wait $!
		echo $? >/tmp/rc
		kill "$dog" 2>/dev/null
	) | sed 's/^/# /'
	rc=$(cat /tmp/rc)
	el=$(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%d", b - a }')
	echo "# $name: exit $rc after ${el}s"
	case $rc in
	0) tap ok "$name" ;;
	4) tap ok "$name" SKIP ;;
	137) if [ "$el" -ge "$to" ]; then
		tap "not ok" "$name" "TIMEOUT ${to}s"
	else
		tap "not ok" "$name" "killed (SIGKILL)"
	fi ;;
	*) tap "not ok" "$name" "exit=$rc" ;;
	esac
}

# selected COLLECTION PROGRAM: true when cowlab.tests= (make kselftest
# TESTS=, comma-separated shell patterns) is unset or one of its patterns
# matches PROGRAM or COLLECTION:PROGRAM.
selected() {
	[ -n "$TESTS" ] || return 0
	for pat in $(echo "$TESTS" | tr , ' '); do
		# shellcheck disable=SC2254 # the patterns are meant to glob
		case $2 in $pat) return 0 ;; esac
		# shellcheck disable=SC2254
		case $1:$2 in $pat) return 0 ;; esac
	done
	return 1
}

# run_ksft DIR: every selected program of an installed kselftest tree
# (DIR/kselftest-list.txt lists COLLECTION:PROGRAM), with the timeout of
# the collection's settings file (kselftest's default: 45 s).
run_ksft() {
	[ -f "$1/kselftest-list.txt" ] || return 0
	# cowlab.stress=SECONDS on the command line: the stress program's
	# duration (make check CONFIG=debug runs the long version).
	st=$(cmdline_arg cowlab.stress)
	[ -n "$st" ] && export COW_STRESS_SECONDS="$st"
	# cowlab.timeout=SECONDS: every program's timeout (slow kernels: KASAN).
	tmo=$(cmdline_arg cowlab.timeout)
	TESTS=$(cmdline_arg cowlab.tests)
	# cowlab.args= (base64; make kselftest TEST_ARGS=): arguments for each
	# program run, e.g. a kselftest harness's "-t TEST" or "-f FIXTURE".
	args=$(cmdline_arg cowlab.args | base64 -d 2>/dev/null)
	while IFS=: read -r col prog; do
		selected "$col" "$prog" || continue
		to=45
		s=$1/$col/settings
		[ -f "$s" ] && to=$(sed -n 's/^timeout=//p' "$s")
		[ -n "$tmo" ] && to=$tmo
		# shellcheck disable=SC2086 # the arguments are meant to split
		run_prog "$col: $prog" "${to:-45}" "$1/$col" "./$prog" $args
		sys_reset
	done <"$1/kselftest-list.txt"
}

# run_mm_cow SETTING: the upstream mm/cow suite under one knob setting.
run_mm_cow() {
	name="mm: cow [${1}]"
	[ "$1" = - ] && name="mm: cow [all knobs off]"
	why=$(set_knobs "$1")
	case $? in
	0) run_prog "$name" "${MM_COW_TIMEOUT:-600}" /ksft-mm/mm ./cow ;;
	1) tap ok "$name" "SKIP $why" ;;
	*) tap "not ok" "$name" "$why" ;;
	esac
	knobs_reset
}

job_kselftest() {
	echo "TAP version 13"
	run_ksft /ksft
	echo "1..$T"
}

job_check() {
	echo "TAP version 13"
	run_ksft /ksft
	echo "$KNOB_SETTINGS" | while read -r s; do
		run_mm_cow "$s"
		echo "$T" >/tmp/T
	done
	T=$(cat /tmp/T)
	echo "1..$T"
}
