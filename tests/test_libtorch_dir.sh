#!/bin/sh
# test_libtorch_dir.sh - `make LIBTORCH=DIR`, the way to build the shim against another
# libtorch (a pip torch's torch/ folder for CUDA). DIR here is a stand-in laid out like a pip
# torch (include/, lib/, share/cmake/Torch/TorchConfig.cmake) that points at Debian's
# libtorch: the shim must build from it, take the C++ ABI flag from its TorchConfig.cmake,
# load in vggtl and compute. A CUDA libtorch itself cannot be tested without a GPU machine.
# Prints TAP lines.
. "$(dirname "$0")/tap.sh"

L=$T/torch
mkdir -p "$L/lib" "$L/share/cmake/Torch"
ln -s /usr/include "$L/include"
for lib in torch torch_cpu c10; do
	f=$(${CXX:-g++} -print-file-name=lib$lib.so)
	ln -s "$f" "$L/lib/lib$lib.so"
	# the versioned name the shim will ask for, which a pip torch's lib/ would hold
	soname=$(readelf -d "$f" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
	[ -z "$soname" ] || [ -e "$L/lib/$soname" ] || ln -s "$f" "$L/lib/$soname"
done
config=$(${CXX:-g++} -print-file-name=cmake/Torch/TorchConfig.cmake)
[ -f "$config" ] || config=/usr/lib/$(${CXX:-g++} -print-multiarch)/cmake/Torch/TorchConfig.cmake
cp "$config" "$L/share/cmake/Torch/"

# the recipe make would run (compiling each shim/*.cpp, then linking), into a scratch SHIMDIR
S=$T/shimdir
recipe() { make -s -n -B LIBTORCH="$1" SHIMDIR="$S" "$S/libvggtl_shim.so" | grep -- '-fPIC\|-shared'; }
cmd=$(recipe "$L")
check "the recipe compiles against DIR/include" sh -c 'echo "$1" | grep -q -- "-I$2/include "' sh "$cmd" "$L"
check "the recipe links DIR/lib with an rpath" sh -c 'echo "$1" | grep -q -- "-Wl,-rpath,$2/lib"' sh "$cmd" "$L"
check "the ABI flag comes from TorchConfig.cmake (Debian: new ABI)" sh -c 'echo "$1" | grep -q -- "-D_GLIBCXX_USE_CXX11_ABI=1"' sh "$cmd"

# a pip wheel's TorchConfig.cmake before torch 2.7 asks for the old ABI
sed 's/_GLIBCXX_USE_CXX11_ABI=1/_GLIBCXX_USE_CXX11_ABI=0/' "$config" >"$L/share/cmake/Torch/TorchConfig.cmake"
old=$(recipe "$L")
check "an old-ABI TorchConfig.cmake gives -D_GLIBCXX_USE_CXX11_ABI=0" sh -c 'echo "$1" | grep -q -- "-D_GLIBCXX_USE_CXX11_ABI=0"' sh "$old"
# torch 2.13 and later need C++20 and say so in TorchConfig.cmake
sed 's/CXX_STANDARD [0-9]*/CXX_STANDARD 20/' "$config" >"$L/share/cmake/Torch/TorchConfig.cmake"
std20=$(recipe "$L")
check "the recipe uses -std=c++17 when TorchConfig.cmake asks for less" sh -c 'echo "$1" | grep -q -- "-std=c++17 "' sh "$cmd"
check "and -std=c++20 when it asks for C++20" sh -c 'echo "$1" | grep -q -- "-std=c++20 "' sh "$std20"
cp "$config" "$L/share/cmake/Torch/"

# build it for real, into the scratch folder, and compute with it
so=$S/libvggtl_shim.so
if make -s -j2 LIBTORCH="$L" SHIMDIR="$S" "$so" >"$T/log" 2>&1; then
	ok "the shim builds from DIR"
else
	nok "the shim builds from DIR"
	sed 's/^/# /' "$T/log"
fi
check "the shim finds libtorch in DIR/lib" sh -c 'ldd "$1" | grep -q "libtorch_cpu[^ ]* => $2/lib/"' sh "$so" "$L"
# under SAN=1, LeakSanitizer is off for runs that load libtorch, as in tests/run.sh
if ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" VGGTL_SHIM=$so "$V" eval --arch vgg11 --seed 1 --json >"$T/out" 2>"$T/err"; then
	ok "vggtl eval runs on the shim built from DIR"
else
	nok "vggtl eval runs on the shim built from DIR"
	sed 's/^/# /' "$T/err"
fi
check "the evaluation covered the 200 test images" grep -q '"images":[[:space:]]*200' "$T/out"
echo "1..$n"
