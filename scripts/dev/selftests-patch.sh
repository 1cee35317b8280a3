#!/usr/bin/env bash
# Generate the series' last patch from selftests/cow/ (the source of truth):
# it adds tools/testing/selftests/cow/, the "cow" TARGETS entry and the
# directory's MAINTAINERS line (under MEMORY MANAGEMENT, beside mm/).
# The commit message is scripts/dev/selftests-patch.msg.
# Usage: selftests-patch.sh BASE_TREE OUT.patch
#   BASE_TREE  the pristine kernel tree (its selftests Makefile and
#              MAINTAINERS are the patch's base)
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

base=$1 out=$2
top=$PWD
mk=tools/testing/selftests/Makefile
if [ ! -f "$base/$mk" ] || [ ! -f "$base/MAINTAINERS" ]; then
	die "$base is not a kernel tree"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The same output on every machine: no user or system git configuration.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME="cowlab developers" GIT_AUTHOR_EMAIL="dev@cowlab.invalid"
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL
export GIT_AUTHOR_DATE="2026-11-21T00:00:00Z" GIT_COMMITTER_DATE="2026-11-21T00:00:00Z"
g() { git -C "$tmp" -c core.autocrlf=false -c init.defaultBranch=main "$@"; }

g init -q
mkdir -p "$tmp/tools/testing/selftests/cow"
cp "$base/$mk" "$tmp/$mk"
cp "$base/MAINTAINERS" "$tmp/MAINTAINERS"
# The patch sits last in the series: its base is the pristine tree plus
# what the patches before it do to these two files.
series_patches "$top/patches" | sed '$d' | while read -r p; do
	g apply --include=MAINTAINERS --include="$mk" "$top/patches/$p" ||
		die "patches/$p does not apply to $base"
done
g add -A
g commit -q -m base

grep -q '^TARGETS += core$' "$tmp/$mk" ||
	die "no 'TARGETS += core' line to anchor the cow entry in $base/$mk"
sed -i 's/^TARGETS += core$/&\nTARGETS += cow/' "$tmp/$mk"
[ "$(grep -c '^F:	tools/testing/selftests/mm/$' "$tmp/MAINTAINERS")" = 1 ] ||
	die "no single 'F: tools/testing/selftests/mm/' line in $base/MAINTAINERS"
sed -i 's#^F:	tools/testing/selftests/mm/$#F:	tools/testing/selftests/cow/\n&#' "$tmp/MAINTAINERS"
# Every file of selftests/cow that git would keep (built programs are ignored).
git -C "$top/selftests/cow" ls-files --cached --others --exclude-standard |
	while read -r f; do
		cp "$top/selftests/cow/$f" "$tmp/tools/testing/selftests/cow/$f"
	done
g add -A
g commit -q -F "$top/scripts/dev/selftests-patch.msg"
g format-patch -q -1 --zero-commit --no-signature --stdout HEAD >"$out.tmp"
mv "$out.tmp" "$out"
