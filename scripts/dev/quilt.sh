#!/usr/bin/env bash
# Run quilt in the patched tree (build/linux) with the series' diff style
# (scripts/build/quiltrc), e.g.:
#   scripts/dev/quilt.sh pop NAME; ...edit...; scripts/dev/quilt.sh refresh --diffstat
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top/build/linux" || exit 1
exec quilt --quiltrc "$top/scripts/build/quiltrc" "$@"
