#!/usr/bin/env bash
# Give a staged kselftest program fixed arguments: the guest runner runs
# programs without any, so PROG becomes a wrapper that runs PROG.bin ARGS.
# Usage: ksft-wrap.sh PROG ARGS...
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

prog=$1
shift
[ -f "$prog" ] || die "no staged program $prog"
mv "$prog" "$prog.bin"
printf '#!/bin/sh\nexec ./%s.bin %s\n' "$(basename "$prog")" "$*" >"$prog"
chmod +x "$prog"
