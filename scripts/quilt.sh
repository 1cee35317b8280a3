#!/usr/bin/env bash
# Run quilt in the patched tree (build/linux) with the series' diff style
# (scripts/quiltrc), e.g.:
#   scripts/quilt.sh pop NAME; ...edit...; scripts/quilt.sh refresh --diffstat
set -euo pipefail
rc=$(cd "$(dirname "$0")" && pwd)/quiltrc
cd "$(dirname "$0")/../build/linux" || exit 1
exec quilt --quiltrc "$rc" "$@"
