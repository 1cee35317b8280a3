# shellcheck shell=sh
# The cow sysctls (sourced by guest.sh).

# The sysctl settings under which `make check` runs the upstream mm/cow suite,
# each in turn. One setting a line; "-" means every knob at its default.
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

# The knobs whose writes patch kernel text: each switches a static key
# (cow_latency_sample: mm/cow_latency.c; the pre-copy pair: mm/memory.c).
# Under multi-threaded TCG a vCPU can run a stale int3 while another
# patches text, so qemu-run.sh's ACCEL=mttcg boots with cowlab.keys=frozen:
# these knobs are then never written at run time; a value other than the
# default is given on the kernel command line (APPEND="sysctl.vm.KNOB=N",
# applied at boot by the kernel's do_sysctl_args()).
STATIC_KEY_KNOBS='cow_latency_sample cow_precopy_pages cow_precopy_adaptive'

# keys_frozen: true when this boot must not switch static keys.
keys_frozen() { [ "$(cmdline_arg cowlab.keys)" = frozen ]; }

# knob_fixed KNOB: true when KNOB must not be written in this boot.
knob_fixed() {
	keys_frozen || return 1
	case " $STATIC_KEY_KNOBS " in *" $1 "*) return 0 ;; esac
	return 1
}

# knobs_reset: every cow knob that this kernel has back to its default
# (a fixed one keeps what the boot gave it).
knobs_reset() {
	for kv in $KNOB_DEFAULTS; do
		f=/proc/sys/vm/${kv%%=*}
		[ -f "$f" ] || continue
		knob_fixed "${kv%%=*}" || echo "${kv#*=}" >"$f"
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
# this kernel or is fixed in this boot, fails (2) when a value does not
# stick.
set_knobs() {
	knobs_reset
	for kv in $1; do
		[ "$kv" = - ] && continue
		f=/proc/sys/vm/${kv%%=*}
		if [ ! -f "$f" ]; then
			echo "vm.${kv%%=*} not in this kernel"
			return 1
		fi
		if knob_fixed "${kv%%=*}"; then
			[ "$(cat "$f")" = "${kv#*=}" ] && continue
			echo "vm.${kv%%=*} switches a static key: fixed at boot (cowlab.keys=frozen)"
			return 1
		fi
		if ! echo "${kv#*=}" >"$f" 2>/dev/null ||
			[ "$(cat "$f")" != "${kv#*=}" ]; then
			echo "cannot set vm.$kv"
			return 2
		fi
	done
}
