# shellcheck shell=sh
# The benchmark plan (sourced by guest.sh): every table's parameter grid
# is stated here and only here. Results are "r table=LETTER KEY=VALUE..."
# lines (a VALUE has no spaces: a skip reason writes them as "+"); the
# report (scripts/report/) iterates over the lines it finds. Letters:
# A fault anatomy and B page size (one set of runs), C pre-copy, D THP
# modes, E snapshot cost, F overhead, G writer stall.
BENCH=/bench/cow_fault
SNAP=/bench/cow_snapshot
SAMPLE_KNOB=/proc/sys/vm/cow_latency_sample

# F, overhead: 4 KiB COW faults per vm.cow_latency_sample setting.
OVERHEAD_PAGES=4096
OVERHEAD_REPS=5
OVERHEAD_SETTINGS="0 64 1"
# A and B, fault anatomy and page size: CLASS REGIONS HUGETLB_KB PAGE_KIB KNOBS.
PAGE_SIZE_PLAN='4k 2048 0 4 -
thp 16 0 2048 cow_thp_mode=split
thpcopy 16 0 2048 cow_thp_mode=copy
hugetlb2m 4 2048 2048 -
hugetlb1g 1 1048576 1048576 -
mthp64 256 0 64 cow_mthp_mode=split
mthp64copy 256 0 64 cow_mthp_mode=copy'
# D, THP modes: one knob setting a line, over THP_MODES_REGIONS 2 MiB THPs.
THP_MODES_REGIONS=64
THP_MODES_SETTINGS='cow_thp_mode=split
cow_thp_mode=copy
cow_thp_mode=split cow_precopy_pages=15
cow_thp_mode=split cow_precopy_pages=15 cow_precopy_adaptive=1'
# C, pre-copy: write patterns x windows (aN: adaptive, max N; W:SIZE: into
# folios of that mTHP size) over PRECOPY_PAGES COW-shared pages, and
# PRECOPY_MEMCPY_REPS plain 4 KiB copies.
PRECOPY_PAGES=16384
PRECOPY_WORKLOADS="seq random stride2 desc"
PRECOPY_WINDOWS="0 1 3 7 15 31 a31 15:16kB 15:64kB 31:64kB a31:64kB"
PRECOPY_MEMCPY_REPS=1000
# E, snapshot cost: region sizes (MiB) x backings; each runs
# cow_snapshot() asynchronous and eager, fork() and mmap + memcpy.
SNAPSHOT_SIZES="1 16 256 1024"
SNAPSHOT_BACKINGS="4k thp"
# G, writer stall: the heap (MiB), the other memory of the process (MiB:
# the heap a quarter of it, then all of it), the methods (fork();
# cow_snapshot() eager, asynchronous, asynchronous + MADV_COW_UNSHARE of
# the hot set), the warm-up (s).
STALL_HEAP=512
STALL_OTHER="1536 0"
STALL_METHODS="fork snapshot-eager snapshot-async snapshot-async-unshare"
STALL_WARMUP=0.25

# benchf: table F alone (make run repeats it over several boots).
job_benchf() {
	job_smoke
	bench_overhead
}

# benchmt: the tables in which threads of the benchmark and the kernel's
# background settling run on both vCPUs at once (E and G, same grid), for
# make run's multi-threaded TCG boots (ACCEL=mttcg: wall clock). They
# switch no static key (knobs.sh), which such a boot must not.
job_benchmt() {
	job_smoke
	bench_snapshot_cost
	bench_writer_stall
	snap_verdict
}

# bench: the whole suite. Under -icount on the lab machine E and G add
# about 80 s of wall time to the bench boot (as job benchmt under MTTCG: 50-70 s).
job_bench() {
	job_benchf
	[ -x $BENCH ] && [ -f $SAMPLE_KNOB ] || return 0
	bench_page_size
	bench_thp_modes
	bench_precopy
	bench_snapshot_cost
	bench_writer_stall
	snap_verdict
}

# F: the cost of a 4 KiB COW fault per sampling setting, the settings
# interleaved so that drift hits them alike. Without the series only the
# baseline runs.
bench_overhead() {
	[ -x $BENCH ] || return 0
	settings=$OVERHEAD_SETTINGS
	[ -f $SAMPLE_KNOB ] || settings=stock
	progress "table F (overhead): sample=$settings x $OVERHEAD_REPS repetitions"
	rep=0
	while [ $rep -lt $OVERHEAD_REPS ]; do
		rep=$((rep + 1))
		for s in $settings; do
			[ "$s" = stock ] || echo "$s" >$SAMPLE_KNOB
			echo "r table=F sample=$s rep=$rep $($BENCH user 4k $OVERHEAD_PAGES)"
		done
	done
	[ -f $SAMPLE_KNOB ] && echo 0 >$SAMPLE_KNOB
	return 0
}

# A and B: user-side latency with timing off, then the kernel's phases of
# the same faults (every one sampled and traced).
bench_page_size() {
	progress "tables A and B (fault anatomy, page size): $(echo "$PAGE_SIZE_PLAN" | cut -d' ' -f1 | tr '\n' ' ')"
	echo "$PAGE_SIZE_PLAN" | while read -r cls regions kb kib knobs; do
		if why=$(set_knobs "$knobs"); then
			bench_class "$cls" "$regions" "$kb" "$kib"
		else
			echo "r table=B class=$cls page_kib=$kib skipped=$(echo "$why" | tr ' ' +)"
		fi
	done
	knobs_reset
}

# bench_class CLASS REGIONS HUGETLB_KB PAGE_KIB: one row of table B.
bench_class() {
	if [ "$3" != 0 ]; then
		free=$(cat "/sys/kernel/mm/hugepages/hugepages-$3kB/free_hugepages" 2>/dev/null)
		if [ "${free:-0}" -lt $(($2 * 2)) ]; then
			echo "r table=B class=$1 page_kib=$4 skipped=need+$(($2 * 2))+free+pages"
			return 0
		fi
	fi
	echo "r table=B page_kib=$4 $($BENCH user "$1" "$2")"
	echo 1 >$SAMPLE_KNOB
	echo "r table=B page_kib=$4 $($BENCH trace "$1" "$2")"
	echo 0 >$SAMPLE_KNOB
}

# D: THP COW modes, first write and whole rewrite of 2 MiB regions.
bench_thp_modes() {
	progress "table D (THP modes): $(echo "$THP_MODES_SETTINGS" | wc -l) settings x $THP_MODES_REGIONS THPs"
	echo "$THP_MODES_SETTINGS" | while read -r knobs; do
		setting=$(echo "$knobs" | tr ' ' ,)
		if why=$(set_knobs "$knobs"); then
			echo "r table=D setting=$setting $($BENCH thp - $THP_MODES_REGIONS)"
		else
			echo "r table=D setting=$setting skipped=$(echo "$why" | tr ' ' +)"
		fi
	done
	knobs_reset
}

# C: pre-copy windows x workloads, and the cost of a plain 4 KiB memcpy to
# compare a written page's cost with.
bench_precopy() {
	if [ ! -f /proc/sys/vm/cow_precopy_pages ]; then
		echo "r table=C skipped=vm.cow_precopy_pages+not+in+this+kernel"
		return 0
	fi
	progress "table C (pre-copy): patterns $PRECOPY_WORKLOADS x windows $PRECOPY_WINDOWS"
	echo "r table=C $($BENCH memcpy - $PRECOPY_MEMCPY_REPS)"
	for wl in $PRECOPY_WORKLOADS; do
		for win in $PRECOPY_WINDOWS; do
			w=${win%%:*} mthp=""
			[ "$w" = "$win" ] || mthp=${win#*:}
			case $w in
			a*) knobs="cow_precopy_pages=${w#a} cow_precopy_adaptive=1" ;;
			*) knobs="cow_precopy_pages=$w" ;;
			esac
			set_knobs "$knobs" >/dev/null
			# shellcheck disable=SC2086 # no MTHP_SIZE: no argument
			echo "r table=C window=$win $($BENCH precopy "$wl" $PRECOPY_PAGES $mthp)"
		done
	done
	knobs_reset
}

# snap_line KEYS ARGS...: run $SNAP ARGS, print its line as a result;
# when it fails (an image that differs from its source, a failed call),
# what it printed (else KEYS) with error=exit+RC, and SNAP_FAILED is set.
SNAP_FAILED=""
snap_line() {
	keys=$1
	shift
	if out=$($SNAP "$@"); then
		echo "r $out"
	else
		snap_rc=$?
		echo "r ${out:-$keys} error=exit+$snap_rc"
		SNAP_FAILED="$SNAP_FAILED [$keys]"
	fi
}

# snap_verdict: fails (the job's exit status 1) when a snapshot benchmark
# failed; its results are all there, the failed ones with error=.
snap_verdict() {
	[ -z "$SNAP_FAILED" ] && return 0
	echo "# snapshot benchmarks failed:$SNAP_FAILED (see their error= results)"
	return 1
}

# has_snapshot LETTER: true when the kernel has cow_snapshot(); else says
# so as that table's result.
has_snapshot() {
	[ -x $SNAP ] || return 1
	grep -q '^cow_snapshot_pages ' /proc/vmstat && return 0
	echo "r table=$1 skipped=cow_snapshot+not+in+this+kernel"
	return 1
}

# E: cow_snapshot() next to fork() and a plain copy.
bench_snapshot_cost() {
	has_snapshot E || return 0
	progress "table E (snapshot cost): sizes $SNAPSHOT_SIZES MiB x $SNAPSHOT_BACKINGS, async, eager, fork, memcpy"
	knobs_reset
	for size in $SNAPSHOT_SIZES; do
		for backing in $SNAPSHOT_BACKINGS; do
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
}

# G: a key-value store's writer while an image of its heap is taken.
bench_writer_stall() {
	has_snapshot G || return 0
	progress "table G (writer stall): $STALL_METHODS, other memory $STALL_OTHER MiB"
	knobs_reset
	for other in $STALL_OTHER; do
		for method in $STALL_METHODS; do
			snap_line "table=G method=$method heap_mib=$STALL_HEAP other_mib=$other" \
				table-g "$method" "$STALL_HEAP" "$other" "$STALL_WARMUP"
		done
	done
}
