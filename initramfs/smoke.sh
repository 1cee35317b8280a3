# shellcheck shell=sh
# smoke: what the kernel under test offers, as KEY=VALUE lines (sourced by
# guest.sh); the report's smoke table lists what it finds here.
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
