# shellcheck shell=sh
# trace (sourced by guest.sh): make trace, the cow:cow_copy tracepoint as
# a histogram of total_ns (log2 buckets) per size class, over a COW
# workload with every event sampled (vm.cow_latency_sample=1). Needs
# CONFIG_HIST_TRIGGERS; without it the same table is counted from the raw
# events in the trace buffer.
TRACE=/sys/kernel/tracing
COW_EVENT=$TRACE/events/cow/cow_copy
HIST='hist:keys=class,total_ns.log2:sort=class,total_ns'

# trace_workload: COW faults of each size class the machine allows.
trace_workload() {
	for run in "4k 256 -" "thp 8 cow_thp_mode=split" "thpcopy 8 cow_thp_mode=copy" \
		"hugetlb2m 2 -" "mthp64copy 16 cow_mthp_mode=copy"; do
		# shellcheck disable=SC2086 # the words of the run are its fields
		set -- $run
		set_knobs "$3" >/dev/null || continue
		echo 1 >"$SAMPLE_KNOB"
		echo "workload: cow_fault user $1 $2 ($3): $("$BENCH" user "$1" "$2" | cut -d' ' -f1-3)"
	done
	knobs_reset
}

# trace_legend: the class numbers the histogram shows, from the event's
# print format ({ 0, "pte" }, ...; an enum name that tracefs did not
# resolve counts from 0 in the order listed, the enum's order).
trace_legend() {
	sed -n 's/.*__print_symbolic(REC->class, //p' "$COW_EVENT/format" |
		awk -F'[{}]' '{
			for (i = 2; i <= NF; i += 2) {
				split($i, kv, ",")
				k = kv[1]; v = kv[2]
				gsub(/[ "]/, "", k); gsub(/[ "]/, "", v)
				if (k !~ /^[0-9]+$/) k = n + 0
				n++
				out = out " " k "=" v
			}
			print "class:" out
		}'
}

job_trace() {
	if [ ! -d "$COW_EVENT" ]; then
		echo "no $COW_EVENT: this kernel has no cow:cow_copy tracepoint"
		return 1
	fi
	[ -x "$BENCH" ] || { echo "no $BENCH"; return 1; }
	echo "cow:cow_copy fields:$(sed -n 's/^[[:space:]]*field:[^;]* \([a-z_]*\);.*/ \1/p' "$COW_EVENT/format" | tr -d '\n')"
	trace_legend
	if echo "$HIST" >"$COW_EVENT/trigger" 2>/dev/null; then
		echo "trigger: $HIST"
		trace_workload
		echo "--- $COW_EVENT/hist"
		cat "$COW_EVENT/hist"
		echo "!$HIST" >"$COW_EVENT/trigger"
		return 0
	fi
	echo "no hist trigger (CONFIG_HIST_TRIGGERS=n?): counting the raw events in $TRACE/trace instead"
	echo 0 >$TRACE/tracing_on
	: >$TRACE/trace
	echo 1 >"$COW_EVENT/enable"
	echo 1 >$TRACE/tracing_on
	trace_workload
	echo 0 >"$COW_EVENT/enable"
	echo "--- events by class and log2(total_ns)"
	awk '/cow_copy:/ {
		c = ""; t = -1
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^class=/) c = substr($i, 7)
			if ($i ~ /^total_ns=/) t = substr($i, 10) + 0
		}
		if (c == "" || t < 0) next
		b = 0; v = 1
		while (v * 2 <= t) { v *= 2; b++ }
		n[c " " v]++; tot++
	}
	END {
		for (k in n) print k, n[k]
		print "# total events:", tot + 0
	}' $TRACE/trace | sort -k1,1 -k2,2n |
		awk '/^#/ { print; next } { printf "class: %-10s total_ns in [%d, %d): %d\n", $1, $2, $2 * 2, $3 }'
	: >$TRACE/trace
	return 0
}
