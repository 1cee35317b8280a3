# shellcheck shell=sh
# cowlab guest helpers, sourced by /init (busybox sh). Each concern has its
# own file in /lib/cowlab, sourced here:
#   knobs.sh   the cow sysctls: the settings make check runs, resets
#   tap.sh     the TAP test runner: kselftest programs, mm/cow per setting
#   smoke.sh   what the kernel under test offers (KEY=VALUE facts)
#   bench.sh   the benchmark plan (every table's parameter grid)
#   stress.sh  the stress program under fault injection
#   trace.sh   the cow:cow_copy histogram recipe (make trace)

say() { echo "$*" >/dev/console; }

# cmdline_arg NAME: the value of NAME=VALUE on the kernel command line.
cmdline_arg() {
	read -r cl </proc/cmdline
	for w in $cl; do
		case $w in "$1"=*) echo "${w#*=}" ;; esac
	done
}

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# progress MSG: a progress line for the host to print ("p " lines of the
# results channel; the host keeps the other lines in out/JOB/results.out).
progress() { echo "p $*"; }

# Enable every THP size and the huge zero page and put swap on a RAM disk
# (hugetlb pages are reserved on the kernel command line), so that the
# upstream mm/cow suite skips as little as the machine allows.
setup_memory() {
	thp=/sys/kernel/mm/transparent_hugepage
	if [ -d $thp ]; then
		echo always >$thp/enabled
		echo 1 >$thp/use_zero_page
		for d in "$thp"/hugepages-*kB; do
			[ -f "$d/enabled" ] && echo inherit >"$d/enabled"
		done
	fi
	if [ -b /dev/ram0 ] && mkswap /dev/ram0 >/dev/null 2>&1; then
		swapon /dev/ram0 2>/dev/null
	fi
	# The THP and KSM switches as set up, for knobs_reset (the fuzz
	# program writes them; a killed one cannot put them back).
	SYS_DEFAULTS=""
	for f in $thp/enabled $thp/defrag "$thp"/hugepages-*kB/enabled \
		/sys/kernel/mm/ksm/run; do
		[ -f "$f" ] || continue
		v=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$f")
		[ -n "$v" ] || v=$(cat "$f")
		SYS_DEFAULTS="$SYS_DEFAULTS $f=$v"
	done
}

# cmd: make qemu CMD='...': the command (cowlab.cmd=, base64) run by sh,
# its exit status the job's.
job_cmd() {
	cmdline_arg cowlab.cmd | base64 -d >/tmp/cmd.sh || return 125
	sh /tmp/cmd.sh </dev/null
}

# selftest-warn: the runner's own test: a kselftest job whose programs
# pass while the console shows a kernel splat.
job_selftest_warn() {
	echo 'WARNING: CPU: 0 PID: 1 at cowlab selftest-warn (a fake splat for the runner test)' >/dev/kmsg
	job_kselftest
}

# shellcheck source=knobs.sh
. /lib/cowlab/knobs.sh
# shellcheck source=tap.sh
. /lib/cowlab/tap.sh
# shellcheck source=smoke.sh
. /lib/cowlab/smoke.sh
# shellcheck source=bench.sh
. /lib/cowlab/bench.sh
# shellcheck source=stress.sh
. /lib/cowlab/stress.sh
# shellcheck source=trace.sh
. /lib/cowlab/trace.sh
