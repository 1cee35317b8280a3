# shellcheck shell=bash
# Helpers for the report scripts (sourced, not run): reading a guest job's
# results (DIR/results.out: smoke KEY=VALUE lines and "r KEY=VALUE..."
# result lines; DIR/meta) and formatting numbers.

# Both read the file themselves and stop at the first match: an early exit
# at the end of a pipe would be a SIGPIPE failure under pipefail.

# val DIR KEY: a KEY=VALUE line of the smoke section.
val() {
	awk -v key="$2" '{ sub(/\r$/, "") }
		index($0, key "=") == 1 { print substr($0, length(key) + 2); exit }' "$1/results.out"
}

# r_values FIRST DIR KEY COND...: the values KEY takes on the "r" result
# lines of DIR that have every COND (KEY=VALUE) among their fields, once
# each, in the order the guest ran them; FIRST=1: only the first one.
r_values() {
	local first=$1 f=$2/results.out key=$3
	shift 3
	awk -v first="$first" -v key="$key" -v conds="$*" '
		BEGIN { n = split(conds, c, " ") }
		{ sub(/\r$/, "") }
		/^r / {
			for (i = 1; i <= n; i++)
				if (index(" " $0 " ", " " c[i] " ") == 0)
					next
			for (i = 2; i <= NF; i++)
				if (index($i, key "=") == 1) {
					v = substr($i, length(key) + 2)
					if (!seen[v]++) print v
					if (first) exit
				}
		}' "$f"
}

# get DIR KEY COND...: KEY's value on the first "r" result line that
# has every COND (KEY=VALUE) among its fields; empty when there is none.
get() { r_values 1 "$@"; }

# values DIR KEY COND...: every value KEY takes on the "r" lines with every
# COND, once each, in the order the guest ran them: how a table finds the
# grid that the guest's plan (initramfs/bench.sh) ran.
values() { r_values 0 "$@"; }

# dir_values "DIR..." KEY COND...: what get says in each DIR that has
# it, one a line, sorted numerically.
dir_values() {
	local dirs=$1 d v
	shift
	for d in $dirs; do
		v=$(get "$d" "$@")
		[ -z "$v" ] || echo "$v"
	done | sort -g
}

# med_get "DIR..." KEY COND...: the median of what get says in each DIR
# (one boot each: the middle value, the lower one of two); empty when no
# DIR has it. One DIR: just its value.
med_get() {
	dir_values "$@" | awk '{ v[NR] = $0 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

# range_get "DIR..." KEY COND...: "MIN-MAX" of the DIRs' values, or empty.
range_get() {
	dir_values "$@" | awk 'NR == 1 { lo = $0 } { hi = $0 } END { if (NR) print lo "-" hi }'
}

# why_no_result GETTER KEY DIRS A B: empty when GETTER (a table's reader:
# GETTER DIRS KEY A B) finds KEY for row (A, B); else the row's skip
# reason, its error, or "no result".
why_no_result() {
	local get=$1 key=$2 dirs=$3 a=$4 b=$5 skip err
	[ -z "$("$get" "$dirs" "$key" "$a" "$b")" ] || return 0
	skip=$("$get" "$dirs" skipped "$a" "$b")
	err=$("$get" "$dirs" error "$a" "$b")
	if [ -n "$skip" ]; then
		echo "skipped: ${skip//+/ }"
	elif [ -n "$err" ]; then
		echo "error: ${err//+/ }"
	else
		echo "no result"
	fi
}

# mttcg_dirs RUNDIR: the multi-threaded TCG boots' folders that have
# results (run-bench.sh: RUNDIR/mttcg1, ...), one a line.
mttcg_dirs() {
	local d
	for d in "$1"/mttcg[0-9]*; do
		[ -f "$d/results.out" ] && echo "$d"
	done
	return 0
}

mode_of() {
	case $(sed -n 's/.*accel=\([a-z]*\).*/\1/p' "$1/meta") in
	icount) echo "QEMU TCG -icount shift=0: 1 ns = 1 guest instruction" ;;
	tcg) echo "QEMU TCG: wall-clock guest time, emulation noise included" ;;
	mttcg) echo "QEMU multi-threaded TCG (thread=multi): each vCPU on its own host thread, wall-clock guest time, emulation speed and host noise included" ;;
	kvm) echo "QEMU KVM: hardware time" ;;
	*) echo "QEMU (unknown mode)" ;;
	esac
}

# ratio A B: A/B with 2 decimals (2 significant digits below 0.1), or "-".
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || b == 0) { print "-"; exit }
		r = a / b
		if (r != 0 && r < 0.1 && r > -0.1) printf "%.2g", r; else printf "%.2f", r }'
}
# pct A B: (A-B)/B in percent with a sign, or "-".
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%+.2f%%", (a - b) * 100 / b }'; }
# sub A B: A-B, or "-".
minus() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print "-"; else print a - b }'; }
or_dash() { if [ -n "$1" ]; then echo "$1"; else echo "-"; fi; }

# share A B: A as a whole percentage of B, or "-".
share() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || a == "-" || b == "" || b == 0) print "-"; else printf "%.0f%%", a * 100 / b }'; }

# usec NS: NS in microseconds (one decimal below 100), or "-".
usec() { awk -v a="$1" 'BEGIN { if (a == "") print "-"; else if (a < 100000) printf "%.1f\n", a / 1000; else printf "%.0f\n", a / 1000 }'; }

# verdict VALUE le|ge LIMIT: "met" or "missed" for VALUE <= (>=) LIMIT,
# "no data" when VALUE is empty or "-".
verdict() {
	awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
		if (v == "" || v == "-") print "no data"
		else if (op == "le" ? v + 0 <= l + 0 : v + 0 >= l + 0) print "met"
		else print "missed" }'
}

# unit VALUE SUFFIX: VALUE with SUFFIX ("2.5" "x": "2.5x"), or "-".
unit() { if [ -n "$1" ] && [ "$1" != - ]; then echo "$1$2"; else echo "-"; fi; }
