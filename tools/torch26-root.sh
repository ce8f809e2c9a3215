#!/bin/sh
# torch26-root.sh - a Debian 13 (trixie) root holding python3-torch 2.6 and
# python3-torchvision 0.21, for the interop tests against torch 2.x beside Debian 12's 1.13.
#
#   sh tools/torch26-root.sh            make the root once (or check it), print its path
#   sh tools/torch26-root.sh run CMD... run CMD inside it (as root, /proc mounted, this
#                                        repository bind-mounted at the same path)
#
# The root lives outside the source tree, in $VGGTL_TORCH26_ROOT (default
# /var/cache/vggtl/trixie-torch26), about 3 GB.  It is made with debootstrap from the same
# Debian mirror apt uses here, in a temporary folder renamed into place only when complete, and
# reused afterwards once a check passes: the marker file, and python3 importing torch 2.6 and
# torchvision inside it (`run` checks the marker only).  Making it needs root rights (debootstrap, chroot, mount) and the
# network to the Debian archive; without either it says so on one line and exits 1.
set -eu
ROOT=${VGGTL_TORCH26_ROOT:-/var/cache/vggtl/trixie-torch26}
REPO=$(cd "$(dirname "$0")/.." && pwd)
# libopenblas0-openmp: without it torch falls back to the reference BLAS (ten times slower), as
# on the host; libjpeg62-turbo and libarchive13t64: vggtl links them (JPEG decoding, dataset
# archives); libtorch-dev, libgloo-dev, g++, make: tests/test_dist.py builds the shim against
# torch 2.6 there, for torch 2.6's torchrun (a 1.13 TCPStore client cannot talk to a 2.6 store)
PKGS=python3-torch,python3-torchvision,python3-numpy,libopenblas0-openmp,libcjson1,libpng16-16t64,libjpeg62-turbo,libarchive13t64,zlib1g,libtorch-dev,libgloo-dev,g++,make

die() {
	echo "torch26-root: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "needs root rights (debootstrap, chroot and mount): run as root, or with sudo"

mirror() {
	m=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
	[ -n "$m" ] || m=$(sed -n 's/^deb \(http[^ ]*debian\) .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
	echo "${m:-http://deb.debian.org/debian}"
}

# mounts /proc and the repository inside the root (idempotent), and takes them down again:
# nothing stays mounted there, so that removing the root can never reach into a repository
mounts() {
	mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
	mkdir -p "$ROOT$REPO" "$ROOT/tmp"
	mountpoint -q "$ROOT$REPO" || mount --bind "$REPO" "$ROOT$REPO"
}
unmounts() { # every mount below $1, deepest first
	grep -o " $1/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
}

complete() {
	[ -f "$ROOT/.vggtl-complete" ] || return 1
	mounts
	# a root made before a package joined PKGS gets it now
	missing=
	for p in $(echo "$PKGS" | tr ',' ' '); do
		chroot "$ROOT" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "torch26-root: installing$missing into $ROOT" >&2
		chroot "$ROOT" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends$missing" \
			>"$ROOT.apt.log" 2>&1 || { unmounts "$ROOT"; die "cannot install$missing in $ROOT (see $ROOT.apt.log)"; }
	fi
	chroot "$ROOT" /usr/bin/python3 -c 'import torch, torchvision; assert torch.__version__.startswith("2.6"), torch.__version__' \
		>/dev/null 2>&1
	ok=$?
	unmounts "$ROOT"
	return $ok
}

make_root() {
	command -v debootstrap >/dev/null 2>&1 || {
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2 ||
			die "cannot install debootstrap (apt-get failed: no network to the Debian archive?)"
	}
	tmp=$ROOT.partial
	unmounts "$tmp"
	rm -rf "$tmp"
	mkdir -p "$(dirname "$ROOT")"
	echo "torch26-root: making $ROOT with debootstrap (trixie, $PKGS; about 3 minutes, 3 GB)" >&2
	debootstrap --variant=minbase --include="$PKGS" trixie "$tmp" "$(mirror)" >"$tmp.log" 2>&1 ||
		die "debootstrap failed (no network to the Debian archive?); its log: $tmp.log"
	touch "$tmp/.vggtl-complete"
	unmounts "$tmp"
	unmounts "$ROOT"
	rm -rf "$ROOT"
	mv "$tmp" "$ROOT"
	rm -f "$tmp.log"
}

# run: the marker is enough (importing torch to check takes seconds, and bench times runs);
# otherwise the full check
if [ "${1:-}" != run ] || [ ! -f "$ROOT/.vggtl-complete" ]; then
	if ! complete; then
		make_root
		complete || die "$ROOT was made but python3 there does not import torch 2.6 and torchvision"
	fi
fi
if [ "${1:-}" = run ]; then
	shift
	mounts
	trap 'unmounts "$ROOT"' EXIT
	trap 'exit 130' INT TERM
	rc=0
	chroot "$ROOT" /bin/sh -c 'cd "$0" && exec "$@"' "$REPO" "$@" || rc=$?
	exit $rc
fi
echo "$ROOT"
