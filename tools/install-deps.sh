#!/bin/sh
# Installs the Debian 12 packages vggtl builds and tests with. Does nothing when they are
# all present already, so `make test` stays quick on a prepared machine.
set -e
PKGS="build-essential pkg-config zlib1g-dev libpng-dev libcjson-dev libtorch-dev time \
libopenblas0-openmp libgloo-dev libjpeg62-turbo-dev libarchive-dev python3-torch python3-torchvision clang libclang-rt-14-dev debootstrap"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
