# shellcheck shell=bash
# Helpers shared by the cowlab scripts (sourced, not run).

# step MSG: one progress line for a long step.
step() { printf '==> %s\n' "$*"; }

# note MSG: an informational line.
note() { printf '    %s\n' "$*"; }

# die MSG [LOG]: a clear error, naming the log to read, then exit 1.
die() {
	printf 'error: %s\n' "$1" >&2
	if [ $# -gt 1 ] && [ -n "$2" ]; then
		printf 'error: see %s\n' "$2" >&2
		if [ -f "$2" ]; then
			printf -- '--- last lines of %s ---\n' "$2" >&2
			tail -n 20 "$2" >&2
		fi
	fi
	exit 1
}

# run_logged LOG CMD...: run CMD with its output in LOG; on failure die
# naming LOG.
run_logged() {
	local log=$1
	shift
	if ! "$@" >"$log" 2>&1; then
		die "'$*' failed" "$log"
	fi
}

# abspath PATH: PATH made absolute (need not exist).
abspath() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$PWD" "$1" ;;
	esac
}
