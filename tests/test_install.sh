#!/bin/sh
# test_install.sh - make install into a scratch DESTDIR, then use what it installed as a C
# program and a user would: build examples/ with `pkg-config --cflags --libs vggtl` against the
# installed headers and libvggtl.so only, run them (Python loads what write_state_dict
# writes), run the installed vggtl (which must find its shim in PREFIX/lib/vggtl), read the
# man pages and the bash completion; then make uninstall must leave nothing behind.
# Runs with the plain build (BUILD=build); prints TAP lines.
. "$(dirname "$0")/tap.sh"

if [ "${BUILD:-build}" != build ]; then
	echo "# test_install.sh runs in the plain make test (installing builds the plain library)"
	echo "1..0"
	exit 0
fi
D=$T/dest
P=/usr/local
PY=${PYTHON:-/usr/bin/python3}
if make --no-print-directory install DESTDIR="$D" PREFIX=$P >"$T/log" 2>&1; then ok "make install DESTDIR PREFIX"; else
	nok "make install DESTDIR PREFIX"
	sed 's/^/# /' "$T/log" | tail -20
fi
for f in bin/vggtl lib/vggtl/libvggtl_shim.so lib/libvggtl.so.1 lib/libvggtl.so lib/libvggtl.a \
	lib/pkgconfig/vggtl.pc include/vggtl/vggtl.h include/vggtl/vt_pth.h share/man/man1/vggtl.1 \
	share/man/man1/vggtl-load.1 share/man/man1/vggtl-scan.1 share/bash-completion/completions/vggtl; do
	check "installed $P/$f" test -e "$D$P/$f"
done
check "libvggtl.so.1 has the soname libvggtl.so.1" sh -c "readelf -d '$D$P/lib/libvggtl.so.1' | grep -q 'SONAME.*\[libvggtl.so.1\]'"
hidden=$(nm -D --defined-only "$D$P/lib/libvggtl.so.1" | awk '{ print $3 }' | grep -v '^vt_' | head -3)
check "libvggtl.so.1 exports vt_* only (not: $hidden)" test -z "$hidden"

# the examples, against what was installed (pkg-config relocated into DESTDIR)
export PKG_CONFIG_PATH="$D$P/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$D"
flags=$(pkg-config --cflags --libs vggtl 2>"$T/pcerr")
check "pkg-config --cflags --libs vggtl: $flags" sh -c "echo '$flags' | grep -q -- '-I$D$P/include/vggtl' && echo '$flags' | grep -q -- '-lvggtl'"
for ex in list_tensors write_state_dict; do
	# shellcheck disable=SC2086 # flags are meant to split
	if ${CC:-cc} -std=c11 -Wall -Wextra -Werror examples/$ex.c $flags -o "$T/$ex" 2>"$T/ccerr"; then
		ok "examples/$ex.c builds with the installed headers and library"
	else
		nok "examples/$ex.c builds with the installed headers and library"
		sed 's/^/# /' "$T/ccerr" | head -10
	fi
done
LD_LIBRARY_PATH="$D$P/lib" "$T/list_tensors" tests/fixtures/any/tiny_user.pth >"$T/list" 2>&1
cut -d' ' -f1 "$T/list" >"$T/names"
check "list_tensors prints the state_dict of a user-class model" cmp -s "$T/names" tests/fixtures/any/tiny_user.keys
check "list_tensors: names, dtypes, shapes" grep -qx 'body.0.weight float32 \[2, 1, 3, 3\]' "$T/list"
LD_LIBRARY_PATH="$D$P/lib" "$T/list_tensors" tests/fixtures/any/evil_p0.pkl >"$T/bad" 2>&1
check "list_tensors on a file that is not a checkpoint: exit 1 with a message" sh -c "[ $? -eq 1 ] && grep -q 'list_tensors: ' '$T/bad'"
if LD_LIBRARY_PATH="$D$P/lib" "$T/write_state_dict" "$T/linear.pth"; then ok "write_state_dict writes linear.pth"; else nok "write_state_dict writes linear.pth"; fi
check "Python loads it (weights_only=True) into nn.Linear(3, 2), strict, with the C values" "$PY" -c '
import sys, torch
sd = torch.load(sys.argv[1], weights_only=True)
m = torch.nn.Linear(3, 2); m.load_state_dict(sd, strict=True)
assert torch.equal(m.weight, torch.tensor([[1., 2, 3], [4, 5, 6]])) and torch.equal(m.bias, torch.tensor([0.5, -0.5]))
' "$T/linear.pth"

# the installed command
check "installed vggtl --version" sh -c "'$D$P/bin/vggtl' --version | grep -qx 'vggtl [0-9]*\.[0-9]*\.[0-9]*'"
check "installed vggtl finds its shim in PREFIX/lib/vggtl (eval runs on libtorch)" \
	sh -c "cd '$T' && '$D$P/bin/vggtl' eval --arch vgg11 --data '$(pwd)/data' --threads 2 >/dev/null 2>'$T/everr' || { cat '$T/everr'; false; }"
for c in load save-weights scan train; do
	missing=$("$V" $c --list-options | tr ' ' '\n' | sed 's/=$//; s/^--//' | while read -r o; do
		grep -q -- "\\\\-\\\\-$(echo "$o" | sed 's/-/\\\\-/g')" "$D$P/share/man/man1/vggtl-$c.1" || echo "$o"; done)
	check "vggtl-$c(1) documents every option of vggtl $c -h (missing: $missing)" test -z "$missing"
done
check "vggtl.1 lists every command" sh -c "for c in \$('$V' --bash-completion | sed -n 's/.*compgen -W \"help \\([^\"]*\\)\".*/\\1/p'); do grep -q \"^.B\$c\\\\\\\\fR\\\\|fB\$c\" '$D$P/share/man/man1/vggtl.1' || exit 1; done"
comp() { bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _vggtl; echo "${COMPREPLY[*]}"' sh \
	"$D$P/share/bash-completion/completions/vggtl" "$@"; }
check "bash completion: vggtl sa<TAB> -> save-full save-weights" test "$(comp vggtl sa)" = "save-full save-weights"
check "bash completion: vggtl load --te<TAB> -> --tensors" test "$(comp vggtl load --te)" = "--tensors"

if make --no-print-directory uninstall DESTDIR="$D" PREFIX=$P >"$T/log" 2>&1; then ok "make uninstall"; else nok "make uninstall"; fi
left=$(find "$D" -type f -o -type l | head -5)
check "make uninstall leaves no file behind (left: $left)" test -z "$left"
echo "1..$n"
