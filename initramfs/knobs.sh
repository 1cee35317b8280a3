# shellcheck shell=sh
# The cow sysctls (sourced by guest.sh).

# The sysctl settings under which `make check` runs the upstream mm/cow suite
# (SPEC.md "Tests"). One setting a line; "-" means every knob at its default.
# shellcheck disable=SC2034 # used by tap.sh
KNOB_SETTINGS='-
cow_precopy_pages=15
cow_precopy_adaptive=1
cow_thp_mode=copy
cow_mthp_mode=copy
cow_latency_sample=1'

# Every knob with its default, restored between runs.
KNOB_DEFAULTS='cow_latency_sample=0 cow_latency_warn_ns=0 cow_precopy_pages=0
cow_precopy_adaptive=0 cow_thp_mode=split cow_mthp_mode=split'

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
