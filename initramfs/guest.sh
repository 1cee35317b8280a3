# shellcheck shell=sh
# cowlab guest helpers, sourced by /init (busybox sh).

# The sysctl settings under which `make check` runs the upstream mm/cow suite
# (SPEC.md "Tests"). One setting a line; "-" means every knob at its default.
KNOB_SETTINGS='-
cow_precopy_pages=15
cow_precopy_adaptive=1
cow_thp_mode=copy
cow_latency_sample=1'

# Every knob with its default, restored between runs.
KNOB_DEFAULTS='cow_latency_sample=0 cow_latency_warn_ns=0 cow_precopy_pages=0
cow_precopy_adaptive=0 cow_thp_mode=split'

say() { echo "$*" >/dev/console; }

# cmdline_arg NAME: the value of NAME=VALUE on the kernel command line.
cmdline_arg() {
	read -r cl </proc/cmdline
	for w in $cl; do
		case $w in "$1"=*) echo "${w#*=}" ;; esac
	done
}

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# Enable every THP size and the huge zero page and put swap on a RAM disk
# (hugetlb pages are reserved on the kernel command line), so that the upstream mm/cow suite skips as little as
# the machine allows.
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
	for f in $thp/enabled $thp/defrag /sys/kernel/mm/ksm/run; do
		[ -f "$f" ] || continue
		v=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$f")
		[ -n "$v" ] || v=$(cat "$f")
		SYS_DEFAULTS="$SYS_DEFAULTS $f=$v"
	done
}

# knobs_reset: every cow knob that this kernel has back to its default.
knobs_reset() {
	for kv in $KNOB_DEFAULTS; do
		f=/proc/sys/vm/${kv%%=*}
		[ -f "$f" ] && echo "${kv#*=}" >"$f"
	done
	sys_reset
}

# sys_reset: the THP and KSM switches back to how setup_memory left them
# (not the cow knobs: mm-suites boots set those on the command line).
sys_reset() {
	for kv in $SYS_DEFAULTS; do
		echo "${kv#*=}" >"${kv%%=*}" 2>/dev/null
	done
	return 0
}

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

# run_ksft DIR: every program of an installed kselftest tree
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
	while IFS=: read -r col prog; do
		to=45
		s=$1/$col/settings
		[ -f "$s" ] && to=$(sed -n 's/^timeout=//p' "$s")
		[ -n "$tmo" ] && to=$tmo
		run_prog "$col: $prog" "${to:-45}" "$1/$col" "./$prog"
		sys_reset
	done <"$1/kselftest-list.txt"
}

# set_knobs SETTING: every knob back to its default, then each KNOB=VALUE
# of SETTING ("-": none). Says why and fails (1) when a knob is not in
# this kernel, fails (2) when a value does not stick.
set_knobs() {
	knobs_reset
	for kv in $1; do
		[ "$kv" = - ] && continue
		f=/proc/sys/vm/${kv%%=*}
		if [ ! -f "$f" ]; then
			echo "vm.${kv%%=*} not in this kernel"
			return 1
		fi
		if ! echo "${kv#*=}" >"$f" 2>/dev/null ||
			[ "$(cat "$f")" != "${kv#*=}" ]; then
			echo "cannot set vm.$kv"
			return 2
		fi
	done
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

# smoke: what the kernel under test offers, as KEY=VALUE lines.
job_smoke() {
	echo "kernel=$(uname -r)"
	echo "version=$(cat /proc/version)"
	echo "uptime_at_job_s=$(uptime_s)"
	echo "cpus=$(nproc)"
	echo "clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)"
	echo "mem_total_kb=$(awk '/^MemTotal/ { print $2 }' /proc/meminfo)"
	echo "swap_kb=$(awk '/^SwapTotal/ { print $2 }' /proc/meminfo)"
	thp=/sys/kernel/mm/transparent_hugepage
	echo "thp_enabled=$(cat $thp/enabled 2>/dev/null)"
	echo "thp_sizes=$(for d in "$thp"/hugepages-*kB; do
		[ -d "$d" ] && echo "${d##*hugepages-}"
	done | sort -n | tr '\n' ' ')"
	for d in /sys/kernel/mm/hugepages/hugepages-*kB; do
		[ -d "$d" ] && echo "hugetlb_${d##*hugepages-}=$(cat "$d/nr_hugepages")"
	done
	for kv in $KNOB_DEFAULTS; do
		f=/proc/sys/vm/${kv%%=*}
		if [ -f "$f" ]; then
			echo "knob_${kv%%=*}=$(cat "$f")"
		else
			echo "knob_${kv%%=*}=absent"
		fi
	done
	for c in cow_copy cow_reuse cow_precopy cow_precopy_fail cow_thp_copy \
		cow_thp_split cow_snapshot_pages; do
		v=$(awk -v c="$c" '$1 == c { print $2 }' /proc/vmstat)
		echo "vmstat_$c=${v:-absent}"
	done
	if [ -f /sys/kernel/debug/cow/latency ]; then
		echo "debugfs_cow_latency=present"
	else
		echo "debugfs_cow_latency=absent"
	fi
	return 0
}

# bench: the benchmark suite, as "r KEY=VALUE..." lines for scripts/report.sh
# (a VALUE has no spaces: a skip reason writes them as "+").
# benchf: table F alone (make run repeats it over several boots).
BENCH=/bench/cow_fault
SAMPLE_KNOB=/proc/sys/vm/cow_latency_sample
BENCH_4K_PAGES=4096
BENCH_F_REPS=5
BENCH_D_REGIONS=64
BENCH_C_PAGES=16384
job_benchf() {
	job_smoke
	[ -x $BENCH ] || return 0
	# F: the cost of a 4 KiB COW fault per sampling setting, the settings
	# interleaved so that drift hits them alike. Without the series only
	# the baseline runs.
	settings="0 64 1"
	[ -f $SAMPLE_KNOB ] || settings=stock
	rep=0
	while [ $rep -lt $BENCH_F_REPS ]; do
		rep=$((rep + 1))
		for s in $settings; do
			[ "$s" = stock ] || echo "$s" >$SAMPLE_KNOB
			echo "r table=F sample=$s rep=$rep $($BENCH user 4k $BENCH_4K_PAGES)"
		done
	done
	[ -f $SAMPLE_KNOB ] && echo 0 >$SAMPLE_KNOB
	return 0
}

job_bench() {
	job_benchf
	[ -x $BENCH ] && [ -f $SAMPLE_KNOB ] || return 0
	# A and B: user-side latency with timing off, then the kernel's
	# phases of the same faults (every one sampled and traced).
	# CLASS REGIONS HUGETLB_KB KNOBS
	printf '%s\n' "4k 2048 0 -" "thp 16 0 cow_thp_mode=split" \
		"thpcopy 16 0 cow_thp_mode=copy" "hugetlb2m 4 2048 -" \
		"hugetlb1g 1 1048576 -" |
		while read -r cls regions kb knobs; do
			if why=$(set_knobs "$knobs"); then
				bench_class "$cls" "$regions" "$kb"
			else
				echo "r table=B class=$cls skipped=$(echo "$why" | tr ' ' +)"
			fi
		done
	knobs_reset
	# D: THP COW modes, first write and whole rewrite of 2 MiB regions.
	for knobs in cow_thp_mode=split cow_thp_mode=copy \
		"cow_thp_mode=split cow_precopy_pages=15" \
		"cow_thp_mode=split cow_precopy_pages=15 cow_precopy_adaptive=1"; do
		setting=$(echo "$knobs" | tr ' ' ,)
		if why=$(set_knobs "$knobs"); then
			echo "r table=D setting=$setting $($BENCH thp - $BENCH_D_REGIONS)"
		else
			echo "r table=D setting=$setting skipped=$(echo "$why" | tr ' ' +)"
		fi
	done
	knobs_reset
	bench_precopy
	bench_snapshot
}

# C: pre-copy windows x workloads over BENCH_C_PAGES COW-shared pages, and
# the cost of a plain 4 KiB memcpy to compare a written page's cost with.
bench_precopy() {
	if [ ! -f /proc/sys/vm/cow_precopy_pages ]; then
		echo "r table=C skipped=vm.cow_precopy_pages+not+in+this+kernel"
		return 0
	fi
	echo "r table=C $($BENCH memcpy - 1000)"
	for wl in seq random stride2 desc; do
		for win in 0 1 3 7 15 31 a31; do
			case $win in
			a*) knobs="cow_precopy_pages=${win#a} cow_precopy_adaptive=1" ;;
			*) knobs="cow_precopy_pages=$win" ;;
			esac
			set_knobs "$knobs" >/dev/null
			echo "r table=C window=$win $($BENCH precopy $wl $BENCH_C_PAGES)"
		done
	done
	knobs_reset
}

bench_class() {
	if [ "$3" != 0 ]; then
		free=$(cat "/sys/kernel/mm/hugepages/hugepages-$3kB/free_hugepages" 2>/dev/null)
		if [ "${free:-0}" -lt $(($2 * 2)) ]; then
			echo "r table=B class=$1 skipped=need+$(($2 * 2))+free+pages"
			return 0
		fi
	fi
	echo "r table=B $($BENCH user "$1" "$2")"
	echo 1 >$SAMPLE_KNOB
	echo "r table=B $($BENCH trace "$1" "$2")"
	echo 0 >$SAMPLE_KNOB
}

# E and G: cow_snapshot() next to fork() and a plain copy, and a key-value
# store's writer while an image of its heap is taken. Under -icount on the
# lab machine they add about 55 s of wall time to the bench boot.
SNAP=/bench/cow_snapshot
BENCH_E_SIZES="1 16 256 1024"
BENCH_G_HEAP=512
BENCH_G_OTHER="1536 0"
BENCH_G_WARMUP=0.25

# snap_line KEYS ARGS...: run $SNAP ARGS, print its line as a result;
# when it fails, what it printed (else KEYS) with error=exit+RC.
snap_line() {
	keys=$1
	shift
	if out=$($SNAP "$@"); then
		echo "r $out"
	else
		rc=$?
		echo "r ${out:-$keys} error=exit+$rc"
	fi
}

bench_snapshot() {
	[ -x $SNAP ] || return 0
	if ! grep -q '^cow_snapshot_pages ' /proc/vmstat; then
		echo "r table=E skipped=cow_snapshot+not+in+this+kernel"
		echo "r table=G skipped=cow_snapshot+not+in+this+kernel"
		return 0
	fi
	knobs_reset
	for size in $BENCH_E_SIZES; do
		for backing in 4k thp; do
			# The region and its copy live at once, 256 MiB to spare.
			need=$((size * 2048 + 262144))
			avail=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
			if [ "${avail:-0}" -lt "$need" ]; then
				echo "r table=E size_mib=$size backing=$backing skipped=MemAvailable+${avail}+KiB,+needs+$need"
				continue
			fi
			snap_line "table=E size_mib=$size backing=$backing" \
				table-e "$size" "$backing"
		done
	done
	# G: the heap a quarter of the process, then all of it.
	for other in $BENCH_G_OTHER; do
		for method in fork snapshot snapshot-unshare; do
			snap_line "table=G method=$method heap_mib=$BENCH_G_HEAP other_mib=$other" \
				table-g "$method" "$BENCH_G_HEAP" "$other" "$BENCH_G_WARMUP"
		done
	done
}

# stress: the cow stress program for cowlab.stress= seconds (default 60),
# plain, then with page allocation failures and then slab allocation
# failures injected into it (where the kernel has fault injection). A
# phase is "ok" when the program passes: every failure it met was an
# ENOMEM it tolerated, and no data changed.
STRESS=/ksft/cow/stress
FI=/sys/kernel/debug
FI_TIMES=1000000

# fi_setup NAME: arm NAME (fail_page_alloc or failslab) for tasks with
# make-it-fail set: 1% of allocations, sleeping and highmem ones included.
fi_setup() {
	d=$FI/$1
	echo 1 >"$d/probability"
	echo 1 >"$d/interval"
	echo $FI_TIMES >"$d/times"
	echo 0 >"$d/space"
	echo 0 >"$d/verbose"
	echo Y >"$d/task-filter"
	echo N >"$d/ignore-gfp-wait"
	[ -f "$d/ignore-gfp-highmem" ] && echo N >"$d/ignore-gfp-highmem"
	[ -f "$d/min-order" ] && echo 0 >"$d/min-order"
	return 0
}

fi_off() { echo 0 >"$FI/$1/probability"; }

job_stress() {
	echo "kernel=$(uname -r)"
	echo "TAP version 13"
	secs=$(cmdline_arg cowlab.stress)
	export COW_STRESS_SECONDS="${secs:-60}"
	to=$((COW_STRESS_SECONDS + 120))
	T=0
	run_prog "stress: plain, ${COW_STRESS_SECONDS}s" "$to" /ksft/cow $STRESS
	for fi in fail_page_alloc failslab; do
		if [ ! -d "$FI/$fi" ]; then
			tap ok "stress: $fi" "SKIP no $FI/$fi (CONFIG_FAULT_INJECTION)"
			continue
		fi
		fi_setup $fi
		# The program sets its own make-it-fail once it is set up: an
		# exec under injection can die before the program runs.
		export COW_STRESS_MAKE_IT_FAIL=1
		run_prog "stress: $fi 1%, ${COW_STRESS_SECONDS}s" "$to" /ksft/cow \
			$STRESS
		unset COW_STRESS_MAKE_IT_FAIL
		left=$(cat "$FI/$fi/times")
		fi_off $fi
		echo "r stress=$fi injected=$((FI_TIMES - left))"
	done
	knobs_reset
	echo "1..$T"
}
