#!/bin/sh
# device_check.sh - the GPU check of the training issue as one run on a device machine (the
# device tool's nvidia-h200 image: python3 holds a CUDA torch 2.x and torchvision).
#
# Here, first: make, then put vggtl and the libraries the image may lack in .dev/ (git
# ignores it):
#   make build/vggtl && mkdir -p .dev && cp build/vggtl .dev/ &&
#   cp $(ldd build/vggtl | awk '/libcjson|libpng/ { print $3 }') .dev/
# then run, carrying .dev:   sh tools/device_check.sh [cuda|cuda:N]
# It builds the shim against that python3's torch (or $LIBTORCH), prints what the GPU
# and the build are, and runs tools/device_check.py; the log also goes to $OUT when set.
set -eu
PY=${PYTHON:-python3}
TORCH=${LIBTORCH:-$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "torch in $TORCH"
make --no-print-directory -B LIBTORCH="$TORCH" build/libvggtl_shim.so
if [ -x .dev/vggtl ]; then
	cp .dev/vggtl build/vggtl
	LD_LIBRARY_PATH=$PWD/.dev${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	export LD_LIBRARY_PATH
fi
log=${OUT:-/tmp}/device_check.log
{ "$PY" tools/device_check.py "${1:-cuda}" 2>&1 && echo 0 >"$log.rc" || echo $? >"$log.rc"; } | tee "$log"
# passed: Python exited 0, reached its plan line, and no check failed
[ "$(cat "$log.rc")" = 0 ] && grep -q '^1\.\.[0-9]' "$log" && ! grep -q '^not ok' "$log"
