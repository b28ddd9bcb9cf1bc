# Shared helpers for the integration tests: checks that count, and a bounded
# kvio boot whose console output is kept for the checks. Sourced, not run.

PASSED=0
FAILED=0

ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
not_ok() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }

# check NAME COMMAND...: passes when COMMAND succeeds.
check() {
	local name=$1; shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# contains FILE TEXT: fixed-string search in a captured output.
contains() { grep -qF -- "$2" "$1"; }

# equals A B
equals() { [ "$1" = "$2" ]; }

summary() {
	echo "$1: $PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}
