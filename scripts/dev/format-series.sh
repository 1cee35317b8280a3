#!/usr/bin/env bash
# Rewrite a patch directory as the series is posted: every patch in
# `git format-patch` form ("[PATCH n/m]" subjects, function names in hunk
# headers, index lines), a cover letter 0000-cover-letter.patch with a
# fresh shortlog and diffstat, and the series file naming the new files.
# What a patch changes, its author and its message are kept; git rewrites
# the rest by applying the series to the pristine files and formatting it.
# The cover letter's subject and text are kept from the old one.
# Usage: format-series.sh BASE_TREE [DIR]
#   BASE_TREE  the pristine kernel tree
#   DIR        the patch directory (default patches/; lint passes a copy)
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

base=$(abspath "$1")
dir=$(abspath "${2:-patches}")
cover=0000-cover-letter.patch
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mapfile -t series < <(series_patches "$dir")
[ "${#series[@]}" -gt 0 ] || die "$dir/series lists no patches"

export GIT_COMMITTER_NAME="cowlab developers" GIT_COMMITTER_EMAIL="dev@cowlab.invalid"
export GIT_COMMITTER_DATE="2026-12-02T00:00:00Z"
g() { git -C "$tmp/tree" -c core.autocrlf=false -c init.defaultBranch=main "$@"; }

# The pristine version of every file the series touches, and the kernel's
# .gitattributes (diff=cpp: C function names in hunk headers).
mkdir -p "$tmp/tree"
grep -hE '^(\+\+\+ b|--- a)/' "${series[@]/#/$dir/}" | sed -E 's#^(\+\+\+ b|--- a)/##' |
	sort -u | while read -r f; do
		[ -f "$base/$f" ] || continue
		mkdir -p "$tmp/tree/$(dirname "$f")"
		cp "$base/$f" "$tmp/tree/$f"
	done
cp "$base/.gitattributes" "$tmp/tree/.gitattributes"
g init -q
g add -A
g commit -q -m base

# A patch's header: author, date, subject without its [PATCH ...] prefix,
# and the message up to the "---" line or the first diff line.
header() {
	awk -v out="$2" '
	NR == 1 && /^From [0-9a-f]+ / { next }
	!msg && /^From: / { sub(/^From: /, ""); print > (out ".author"); next }
	!msg && /^Date: / { sub(/^Date: /, ""); print > (out ".date"); next }
	!msg && /^Subject: / {
		sub(/^Subject: (\[[^]]*\] )?/, ""); subj = $0
		# A long subject is folded onto lines that start with a space.
		while ((getline) > 0 && /^[ \t]/)
			subj = subj $0
		print subj > (out ".msg")
		print "" > (out ".msg")
		if ($0 != "")
			print > (out ".msg")
		msg = 1
		next
	}
	msg && (/^---$/ || /^(diff |--- a\/|--- \/dev\/null|Index: )/) { exit }
	msg { print > (out ".msg") }
	' "$1"
	if [ ! -s "$2.author" ] || [ ! -s "$2.msg" ]; then
		die "$1: no From: or Subject: line"
	fi
}

for p in "${series[@]}"; do
	header "$dir/$p" "$tmp/h"
	g apply --index --whitespace=nowarn "$dir/$p" ||
		die "$dir/$p does not apply on top of the patches before it"
	GIT_AUTHOR_DATE=$(cat "$tmp/h.date" 2>/dev/null || echo "$GIT_COMMITTER_DATE") \
		g commit -q --allow-empty-message --cleanup=verbatim \
		--author="$(cat "$tmp/h.author")" -F "$tmp/h.msg"
	rm -f "$tmp/h".*
done

mkdir -p "$tmp/out"
g format-patch -q --cover-letter --numbered --zero-commit --no-signature \
	--subject-prefix=PATCH -o "$tmp/out" main~"${#series[@]}"..main

# The cover letter: the old one's subject and text, git's shortlog and stat.
new=$tmp/out/$cover
if [ -f "$dir/$cover" ]; then
	subject=$(sed -n 's/^Subject: \[PATCH [0-9]*\/[0-9]*\] //p' "$dir/$cover" | head -n 1)
	awk '/^Subject: / { s = 1; getline; next }
	     s && /^[^ ].* \([0-9]+\):$/ { exit }
	     s' "$dir/$cover" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' >"$tmp/blurb"
	awk -v subj="$subject" -v blurb="$tmp/blurb" '
	/\*\*\* SUBJECT HERE \*\*\*/ { sub(/\*\*\* SUBJECT HERE \*\*\*/, subj) }
	/^\*\*\* BLURB HERE \*\*\*$/ {
		while ((getline l < blurb) > 0) print l
		next
	}
	{ print }' "$new" >"$new.tmp"
	mv "$new.tmp" "$new"
fi

# The patched tree (build/linux) may have the series applied under the old
# names: when it was in sync, it still is, under the new ones.
tree=$(abspath build/linux)
stamp=$tree/.cowlab-series
in_sync=""
if [ "$dir" = "$(abspath patches)" ] && [ -f "$stamp" ] &&
	[ "$(cat "$stamp")" = "$(for p in "${series[@]}"; do echo "$p $(patch_md5 "$dir/$p")"; done)" ]; then
	in_sync=1
fi

rm -f "$dir"/*.patch
cp "$tmp/out"/*.patch "$dir/"
(cd "$tmp/out" && printf '%s\n' *.patch | grep -vxF "$cover") >"$dir/series"
note "$dir: ${#series[@]} patches and the cover letter in git format-patch form"

if [ -n "$in_sync" ]; then
	mapfile -t now < <(series_patches "$dir")
	for i in "${!series[@]}"; do
		[ "${series[$i]}" != "${now[$i]}" ] || continue
		mv "$tree/.pc/${series[$i]}" "$tree/.pc/${now[$i]}"
		sed -i "s|^${series[$i]}\$|${now[$i]}|" "$tree/.pc/applied-patches"
	done
	for p in "${now[@]}"; do echo "$p $(patch_md5 "$dir/$p")"; done >"$stamp"
	note "$tree: quilt state and stamp renamed to match"
fi
