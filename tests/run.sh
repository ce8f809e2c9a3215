#!/bin/sh
# Runs every test program and prints the closing line "N passed, N failed".
# Each program prints TAP lines ("ok N - ...", "not ok N - ..."); this script counts them.
#   BUILD   build folder (build, or build/san under SAN=1)
#   PYTHON  the interpreter with Debian's python3-torch (/usr/bin/python3)
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
VGGTL=${VGGTL:-$BUILD/vggtl}
export BUILD PYTHON VGGTL
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() {
	name=$1
	shift
	echo "# $name"
	timeout "${TEST_TIMEOUT:-1200}" "$@" >"$log" 2>&1 # a hang fails the suite instead of stalling CI
	rc=$?
	cat "$log"
	if grep -q '^not ok' "$log" || [ $rc -ne 0 ]; then
		echo "# $name: FAILED (exit $rc)"
		# a program that died without a TAP failure line still counts as one failure
		grep -q '^not ok' "$log" || echo "not ok - $name exited $rc"
	fi
}

all=$(mktemp)
trap 'rm -f "$log" "$all"' EXIT
for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	run "$(basename "$t")" "$t" | tee -a "$all"
done
for t in tests/test_*.sh; do
	[ -f "$t" ] || continue
	run "$(basename "$t")" sh "$t" | tee -a "$all"
done
# The torch 2.6 half needs the Debian 13 root of tools/torch26-root.sh (made here once, about
# 3 minutes and 3 GB, then reused); it runs with the plain build (the root has no sanitizer
# runtime), and a root that cannot be made is one failed check, never a silent pass.
torch26=
if [ "$BUILD" = build ]; then
	if sh tools/torch26-root.sh >"$log" 2>&1; then
		torch26=1
		export VGGTL_TORCH26=1 # test_train.py continues its checkpoints in 2.6 too
	else
		echo "not ok - the torch 2.6 half cannot run: $(tail -n 1 "$log")" | tee -a "$all"
	fi
else
	echo "# the torch 2.6 half runs in the plain make test (the root has no sanitizer runtime)"
fi
for t in tests/test_*.py; do
	[ -f "$t" ] || continue
	case "$BUILD:$t" in
	# libtorch (the shim) is not instrumented, and LeakSanitizer's stop-the-world tracer
	# is unreliable with its thread pools: leaks are checked everywhere else
	*/san:tests/test_train.py | */san:tests/test_dist.py | */san:tests/test_precision.py) (export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"; run "$(basename "$t")" "$PYTHON" "$t") | tee -a "$all" ;;
	*) run "$(basename "$t")" "$PYTHON" "$t" | tee -a "$all" ;;
	esac
done
if [ -n "$torch26" ]; then
	for t in tests/test_interop.py tests/test_anymodel.py tests/test_anymodel_repr.py tests/test_cast.py; do
		run "$(basename "$t") (torch 2.6)" sh tools/torch26-root.sh run python3 "$t" | tee -a "$all"
	done
fi
passed=$(grep -c '^ok' "$all")
failed=$(grep -c '^not ok' "$all")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
