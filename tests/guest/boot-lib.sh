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

# boot NAME KVIO ARGS...: run a guest to completion, output in $out/NAME, status in $out/NAME.rc.
boot() {
	local name=$1; shift
	local start=$SECONDS
	started "$name"
	timeout -k 10 "$BOOT_TIMEOUT" "$@" </dev/null >"$out/$name" 2>&1
	echo $? >"$out/$name.rc"
	echo "# $name: $((SECONDS - start)) s"
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

