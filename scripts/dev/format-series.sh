#!/usr/bin/env bash
# Rewrite a patch directory as the series is posted: every patch in
# `git format-patch` form ("[PATCH n/m]" subjects, function names in hunk
# headers, index lines), a cover letter 0000-cover-letter.patch with a
# fresh shortlog and diffstat, and the series file naming the new files.
# What a patch changes, its author, date and message are kept (read with
# git mailinfo); git rewrites the rest by applying the series to the
# pristine files and formatting it. The cover letter's subject and text
# are kept from the old one.
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

# The same output on every machine: no user or system git configuration.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME="cowlab developers" GIT_AUTHOR_EMAIL="dev@cowlab.invalid"
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL
export GIT_AUTHOR_DATE="2026-12-02T00:00:00Z" GIT_COMMITTER_DATE="2026-12-02T00:00:00Z"
g() { git -C "$tmp/tree" -c core.autocrlf=false -c init.defaultBranch=main "$@"; }

# The pristine version of every file the series touches, and the kernel's
# .gitattributes (diff=cpp: C function names in hunk headers).
mkdir -p "$tmp/tree"
series_files "$dir" | copy_pristine "$base" "$tmp/tree"
cp "$base/.gitattributes" "$tmp/tree/.gitattributes"
g init -q
g add -A
g commit -q -m base

# mailinfo FILE: its header fields into $tmp/info (field NAME reads one),
# its message into $tmp/msg: the subject without [PATCH ...], a blank line,
# the body up to "---".
field() { sed -n "s/^$1: //p" "$tmp/info"; }
mailinfo() {
	git mailinfo -u "$tmp/body" "$tmp/diff" <"$1" >"$tmp/info" ||
		die "$1: git mailinfo cannot read its header"
	if [ -z "$(field Author)" ] || [ -z "$(field Subject)" ]; then
		die "$1: no From: or Subject: line"
	fi
	{ field Subject; echo; cat "$tmp/body"; } >"$tmp/msg"
}

for p in "${series[@]}"; do
	mailinfo "$dir/$p"
	g apply --index --whitespace=nowarn "$dir/$p" ||
		die "$dir/$p does not apply on top of the patches before it"
	date=$(field Date)
	GIT_AUTHOR_DATE=${date:-$GIT_AUTHOR_DATE} g commit -q --allow-empty-message \
		--cleanup=verbatim --author="$(field Author) <$(field Email)>" -F "$tmp/msg"
done

mkdir -p "$tmp/out"
g format-patch -q --cover-letter --numbered --zero-commit --no-signature \
	--subject-prefix=PATCH -o "$tmp/out" main~"${#series[@]}"..main

# The cover letter: the old one's subject and text, git's shortlog and stat.
# The text is what comes after the header up to the old shortlog, whose
# first line is "AUTHOR (N):" for one of the series' authors.
new=$tmp/out/$cover
if [ -f "$dir/$cover" ]; then
	mailinfo "$dir/$cover"
	g log --format=%an main~"${#series[@]}"..main | sort -u >"$tmp/authors"
	AUTHORS=$tmp/authors awk '
	BEGIN { while ((getline a < ENVIRON["AUTHORS"]) > 0) author[a] = 1 }
	/ \([0-9]+\):$/ { a = $0; sub(/ \([0-9]+\):$/, "", a); if (a in author) exit }
	{ print }' "$tmp/body" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' >"$tmp/blurb"
	SUBJ=$(field Subject) BLURB=$tmp/blurb awk '
	/^\*\*\* BLURB HERE \*\*\*$/ {
		while ((getline l < ENVIRON["BLURB"]) > 0)
			print l
		next
	}
	(i = index($0, "*** SUBJECT HERE ***")) {
		$0 = substr($0, 1, i - 1) ENVIRON["SUBJ"] substr($0, i + 20)
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

# Only the old series' files and the cover letter are replaced.
for p in "${series[@]}" "$cover"; do
	rm -f "${dir:?}/$p"
done
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
