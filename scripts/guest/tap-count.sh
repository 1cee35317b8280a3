#!/usr/bin/env bash
# Count a kselftest-style TAP stream: print "N passed, N failed, N skipped".
# Usage: tap-count.sh FILE
# A program's own results (one "# " level deep) are the unit; a program
# without results of its own counts as one. A program that failed after
# only passing results (crash, timeout) adds one failure. XFAIL is a pass.
set -euo pipefail
awk '
# A top-level result closes the program whose "# " lines came before it.
/^(ok|not ok) / {
	if ($0 ~ /^not ok/) top = "fail"
	else if ($0 ~ /# *SKIP/) top = "skip"
	else top = "pass"
	if (st > 0) {
		p += sp; f += sf; s += ss
		if (top == "fail" && sf == 0) f++
	} else if (top == "pass") p++
	else if (top == "skip") s++
	else f++
	st = sp = sf = ss = 0
	next
}
/^# (ok|not ok) [0-9]+/ {
	st++
	if ($0 ~ /^# not ok/) sf++
	else if ($0 ~ /# *SKIP/) ss++
	else sp++
}
END { printf "%d passed, %d failed, %d skipped\n", p, f, s }
' "$1"
