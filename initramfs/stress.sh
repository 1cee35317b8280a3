# shellcheck shell=sh
# stress (sourced by guest.sh): the cow stress program for cowlab.stress=
# seconds (default 60), plain, then with page allocation failures and then
# slab allocation failures injected into it (where the kernel has fault
# injection). A phase is "ok" when the program passes: every failure it
# met was an ENOMEM it tolerated, and no data changed.
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
	# The program runs its two modes (async, eager) for that long each.
	to=$((2 * COW_STRESS_SECONDS + 120))
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
