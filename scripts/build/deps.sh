#!/usr/bin/env bash
# Install the Debian packages cowlab needs, if any is missing.
# Usage: deps.sh   (env: LINUX_DEB_VERSION = pinned linux-source-6.12 version,
#                   KSRC = set when an existing tree replaces the package)
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

: "${LINUX_DEB_VERSION:?LINUX_DEB_VERSION is not set (the Makefile pins it)}"

pkgs=(
	make gcc libc6-dev flex bison bc libelf-dev libssl-dev cpio xz-utils
	rsync perl python3 ccache quilt qemu-system-x86 busybox-static
	liburing-dev libcap-dev libnuma-dev shellcheck gnuplot-nox
)

missing=()
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done
if [ -z "${KSRC:-}" ]; then
	have=$(dpkg-query -W -f='${Status} ${Version}' linux-source-6.12 2>/dev/null || true)
	[ "$have" = "install ok installed $LINUX_DEB_VERSION" ] ||
		missing+=("linux-source-6.12=$LINUX_DEB_VERSION")
fi

[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	printf 'error: missing packages: %s\n' "${missing[*]}" >&2
	printf 'error: as root run:\n  apt-get update && %s\n' "$cmd" >&2
	exit 1
fi

mkdir -p out/build
log=out/build/deps.log
step "installing ${#missing[@]} Debian package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
run_logged "$log" apt-get update
# shellcheck disable=SC2086 # word splitting of the package list is intended
run_logged "$log.install" $cmd
step "packages installed"
