# Shared by the guest test scripts that run inside the testbed (boot-tests,
# net-tests): a scratch dir, bounded boots, and reading the guest's answers.
# Sourced after lib.sh, from the project's root.

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
BOOT_TIMEOUT=${KVIO_BOOT_TIMEOUT:-300}
# A guest that dies early must fail the checks, not kill this script on a write to the pipe.
trap '' PIPE

# Where a hung session stopped shows in the log: each boot says when it starts.
started() { echo "# $1: starting at $SECONDS s"; }

# dump_threads PID: where each thread of PID and of its descendants waits, in
# the kernel and (for kvio) in its own code: what a hung boot leaves to go on.
dump_threads() {
	local task child
	for task in /proc/"$1"/task/*; do
		echo "== $1 $(cat "$task/comm" 2>/dev/null) wchan=$(cat "$task/wchan" 2>/dev/null) syscall=$(cut -d' ' -f1 "$task/syscall" 2>/dev/null)"
		cat "$task/stack" 2>/dev/null
	done
	if [ "$(cat "/proc/$1/comm" 2>/dev/null)" = kvio ] && command -v gdb >/dev/null; then
		timeout -k 5 60 gdb -p "$1" -batch -ex 'thread apply all bt' 2>/dev/null | grep -E '^(Thread|#)'
	fi
	for child in $(pgrep -P "$1"); do dump_threads "$child"; done
}

# guest_registers SOCKET: where a hung guest's vCPUs are, through kvio's
# monitor (tests/guest/guest-state: registers, RIPs named, stack, and the
# frame an interrupt saved, with its interrupt flag).
guest_registers() {
	timeout -k 5 90 tests/guest/guest-state "$1"
}

# kernel_log: the end of the kernel's log, where a task blocked in the kernel
# (the hung-task detector) or an oops under a hung boot shows.
kernel_log() {
	echo "== kernel log, last 40 lines"
	timeout 5 dmesg 2>/dev/null | tail -n 40
}

# boot_once NAME KVIO ARGS...: run a guest to completion, output in
# $out/NAME, status in $out/NAME.rc. A boot that outlives BOOT_TIMEOUT is
# killed; its threads are shown first, its vCPUs' registers if ARGS gave kvio
# `--monitor unix:$out/NAME.qmp`, and the end of the kernel's log.
boot_once() {
	local name=$1; shift
	local start=$SECONDS rc watchdog
	rm -f "$out/$name.threads"
	started "$name"
	timeout -k 10 "$BOOT_TIMEOUT" "$@" </dev/null >"$out/$name" 2>&1 &
	local vmm=$!
	# The dump is taken 90 s before timeout kills the boot: gdb is slow under TCG.
	(
		trap 'kill "$nap" 2>/dev/null; exit 0' TERM
		sleep $((BOOT_TIMEOUT > 180 ? BOOT_TIMEOUT - 90 : BOOT_TIMEOUT / 2)) &
		nap=$!
		wait "$nap"
		dump_threads "$vmm" >"$out/$name.threads" 2>&1
		[ -S "$out/$name.qmp" ] && guest_registers "$out/$name.qmp" >>"$out/$name.threads" 2>&1
		kernel_log >>"$out/$name.threads" 2>&1
	) &
	watchdog=$!
	wait "$vmm"
	rc=$?
	kill "$watchdog" 2>/dev/null
	wait "$watchdog" 2>/dev/null
	echo "$rc" >"$out/$name.rc"
	echo "# $name: $((SECONDS - start)) s"
	# 124: timeout's TERM ended it; 137: it was still there 10 s later.
	if { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; } && [ -s "$out/$name.threads" ]; then
		echo "# $name: still running after $BOOT_TIMEOUT s; its threads then:"
		sed 's/^/#   /' "$out/$name.threads"
	fi
}

# boot NAME KVIO ARGS...: boot_once, and if the guest died of one of the
# testbed's own faults (testbed_fault), again: twice more when the caller
# set BOOT_SETUP (boot_with), a function that sets up afresh what the boot
# needs (its namespace, its peers); else, or a third time, the session ends
# with the runner's "the testbed failed" status (125), and
# tests/guest/run-all runs it again from the start.
boot() {
	local name=$1 attempt why
	for attempt in 1 2 3; do
		boot_once "$@"
		[ "$(cat "$out/$name.rc")" -ne 0 ] && why=$(testbed_fault "$name") || return 0
		grep -a -m1 -A16 'PANIC: ' "$out/$name" | sed 's/^/#   /'
		if [ -z "${BOOT_SETUP-}" ] || [ "$attempt" -eq 3 ]; then
			echo "# $name: the testbed failed: $why; ending the session (exit 125)"
			exit 125
		fi
		echo "# $name: the testbed failed: $why; booting it again"
		"$BOOT_SETUP"
	done
}

# boot_with SETUP NAME KVIO ARGS...: SETUP, then boot, which runs SETUP
# again before it boots again after a testbed fault.
boot_with() {
	local BOOT_SETUP=$1
	shift
	"$BOOT_SETUP"
	boot "$@"
}

# testbed_fault NAME: the reason, if boot NAME's own state shows one of the
# nested testbed's faults that no VMM can cause (README, Testbed): an
# interrupt entered with the guest's interrupts off, a vCPU blind to its own
# RAM (both from tests/guest/guest-state), or a double fault on the first
# instruction of the syscall entry, where SYSCALL has just turned interrupts
# off and the stack is still the user's.
testbed_fault() {
	local why
	why=$(sed -n 's/^testbed fault: //p' "$out/$1.threads" 2>/dev/null | head -1)
	if [ -z "$why" ] && grep -aq 'PANIC: double fault' "$out/$1" 2>/dev/null &&
		grep -aq 'RIP: 0010:entry_SYSCALL_64+0x0/' "$out/$1"; then
		why="a double fault at entry_SYSCALL_64+0x0"
	fi
	[ -n "$why" ] && echo "$why"
}

# kib_within FILE LOW_MIB HIGH_MIB: the guest's MemTotal is in [LOW, HIGH] MiB.
memtotal_within() {
	local kib
	kib=$(sed -n 's/^MemTotal: *\([0-9]*\) kB.*/\1/p' "$1" | head -1)
	[ -n "$kib" ] && [ "$kib" -ge $(($2 * 1024)) ] && [ "$kib" -le $(($3 * 1024)) ]
}

# The guest's answer to a command is the line after "=NAME=" markers we print.
answer() { sed -n "s/^=$2= *//p" "$1" | tr -d '\r' | head -1; }

# wait_for FILE TEXT SECONDS [PID]: until TEXT shows up in FILE (or PID exits).
wait_for() {
	for _ in $(seq 1 "$3"); do
		grep -q -F -- "$2" "$1" && return 0
		[ -n "${4-}" ] && ! kill -0 "$4" 2>/dev/null && return 1
		sleep 1
	done
	return 1
}

