#!/usr/bin/env bash
# Scan a guest console log for kernel splats; print each, exit 1 if any.
# Usage: splat-scan.sh CONSOLE_LOG
set -euo pipefail
pat='BUG:|WARNING:|Oops|Kernel panic|general protection fault|'
pat+='possible circular locking|possible recursive locking|inconsistent lock state|'
pat+='suspicious RCU usage|rcu_sched self-detected stall|rcu: INFO:|'
pat+='blocked for more than|UBSAN:|KASAN:|KFENCE:|kernel BUG at|'
pat+='list_add corruption|list_del corruption|Bad page|bad page state|'
pat+='soft lockup|hard LOCKUP|Unable to handle kernel'
[ -f "$1" ] || { echo "no console log $1"; exit 1; }
if tr -d '\r' <"$1" | grep -nE "$pat"; then
	exit 1
fi
exit 0
