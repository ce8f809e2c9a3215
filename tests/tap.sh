# tap.sh - sourced by the shell tests: V (the vggtl under test), T (a scratch folder removed
# on exit) and the TAP helpers ok, nok and check.
V=${VGGTL:-build/vggtl}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); echo "not ok $n - $1"; }
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
	d=$1
	shift
	if "$@"; then ok "$d"; else nok "$d"; fi
}
