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

# series_patches DIR: the patch names of DIR/series, in order, without
# comments and blank lines.
series_patches() {
	grep -v '^#' "$1/series" | sed '/^$/d'
}

# series_files DIR: every file the series of DIR touches or adds, relative
# to the tree, once each.
series_files() {
	local p
	series_patches "$1" | while read -r p; do
		grep -hE '^(\+\+\+ b|--- a)/' "$1/$p"
	done | sed -E 's#^(\+\+\+ b|--- a)/##' | sort -u
}

# copy_pristine BASE DEST: the files named on stdin that BASE has, copied
# from BASE to the same paths under DEST.
copy_pristine() {
	local f
	while read -r f; do
		[ -f "$1/$f" ] || continue
		mkdir -p "$2/$(dirname "$f")"
		cp "$1/$f" "$2/$f"
	done
}

# patch_md5 FILE: a checksum of what the patch changes, not of how it is
# written: the file and hunk lines only, without git's diff/index lines and
# the function names of hunk headers. A patch that quilt refreshed and the
# same patch in git format-patch form have the same checksum.
patch_md5() {
	awk '/^(diff |--- a\/|--- \/dev\/null)/ { d = 1 }
	     d && /^(--- |\+\+\+ |@@|[ +\\-])/ {
		if ($0 ~ /^@@/)
			sub(/ @@.*/, " @@")
		print
	     }' "$1" | md5sum | cut -d' ' -f1
}

# stock_git TREE: a git repository (build/stock.git) with one commit, TREE
# as it is (the pristine source), made once per source and reused; prints
# its path.
stock_git() {
	local tree repo stamp want
	tree=$(abspath "$1")
	repo=$(abspath build/stock.git)
	stamp=$repo/cowlab-base
	want=$(cat "$tree/.cowlab-base")
	if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
		step "committing the pristine tree to $repo (once per source)" >&2
		rm -rf "$repo"
		git init -q --bare "$repo"
		GIT_DIR=$repo GIT_WORK_TREE=$tree GIT_CONFIG_GLOBAL=/dev/null \
			git add -A -f . ':!.cowlab-base'
		GIT_DIR=$repo GIT_WORK_TREE=$tree GIT_CONFIG_GLOBAL=/dev/null \
			git -c user.name=cowlab -c user.email=cowlab@localhost \
			commit -q -m "$want"
		echo "$want" >"$stamp"
	fi
	printf '%s\n' "$repo"
}
