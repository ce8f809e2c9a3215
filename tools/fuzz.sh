#!/bin/sh
# fuzz.sh - builds the libFuzzer targets of tests/fuzz/ and runs each for a while.
#
#   sh tools/fuzz.sh [TARGET...]          (make fuzz FUZZ_SECONDS=60 calls this)
#
# Environment: FUZZ_SECONDS (per target, default 60; 0 only builds), LIB_SRC (the library
# sources, from the Makefile), CLANG (default clang).  Targets are fuzz_zip, fuzz_pickle,
# fuzz_pth and fuzz_scan by default.  Each is built with clang -fsanitize=fuzzer,address,undefined into
# build/fuzz/, its seeds (the committed fixtures) are copied into build/fuzz/corpus-NAME,
# which keeps what the fuzzer learns between runs (tests/fixtures/ is never written), and it
# runs one worker with -max_len=65536 -rss_limit_mb=2048.  A crash, leak, timeout or
# out-of-memory input is left in build/fuzz/artifacts-NAME/; turn it into a regression input
# under tests/fixtures/crashes/ (test_pth.c runs them all).  Exit status 1 if any target failed.
set -u
cd "$(dirname "$0")/.." || exit 1
SECONDS_EACH=${FUZZ_SECONDS:-60}
CLANG=${CLANG:-clang}
LIB_SRC=${LIB_SRC:-$(make -s --no-print-directory print-lib-src)}
OUT=build/fuzz
FLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude"
[ $# -gt 0 ] || set -- fuzz_zip fuzz_pickle fuzz_pth fuzz_scan
mkdir -p "$OUT"

seeds() {
	case $1 in
	fuzz_zip) ls tests/fixtures/*.pth ;;
	fuzz_pickle) ls tests/fixtures/pkl/*.pkl tests/fixtures/sd_legacy.pth ;;
	fuzz_pth) ls tests/fixtures/*.pth tests/fixtures/any/*.pt* tests/fixtures/crashes/*.pth 2>/dev/null ;;
	fuzz_scan) ls tests/fixtures/*.pth tests/fixtures/any/*.pt* tests/fixtures/any/*.pkl tests/fixtures/pkl/*.pkl 2>/dev/null ;;
	fuzz_data) ls tests/fixtures/cifar-py/*/* tests/fixtures/cifar-py-bad/* tests/fixtures/cifar-tgz/*/* tests/fixtures/png/*.png 2>/dev/null ;;
	fuzz_safetensors) ls tests/fixtures/st/*.safetensors ;;
	*) ;; # no seeds: the fuzzer starts from nothing
	esac
}

status=0
for t in "$@"; do
	src=tests/fuzz/$t.c
	bin=$OUT/$t
	if [ ! -f "$src" ]; then
		echo "fuzz.sh: no target $src" >&2
		exit 2
	fi
	# rebuild when any source or header is newer than the binary
	if [ ! -x "$bin" ] || [ -n "$(find $src $LIB_SRC include -newer "$bin" 2>/dev/null | head -1)" ]; then
		echo "fuzz.sh: building $bin"
		link=$LIB_SRC
		# fuzz_data compiles data.c into itself (to reach its static readers)
		[ "$t" = fuzz_data ] && link=$(echo "$LIB_SRC" | tr ' ' '\n' | grep -v -x -e src/data.c)
		# the image decoders' size limits lowered, so that a header claiming a huge image
		# cannot make one run allocate hundreds of megabytes
		# shellcheck disable=SC2086
		$CLANG $FLAGS -DVT_PNG_MAX_PIXELS='(1u << 20)' -DVT_JPEG_MAX_PIXELS='(1u << 20)' -DVT_JPEG_MAX_SCANS=100 \
			-o "$bin" "$src" $link -lpng -ljpeg -larchive -lz -lm -ldl || exit 1
	fi
	[ "$SECONDS_EACH" -gt 0 ] || continue
	corpus=$OUT/corpus-$t
	artifacts=$OUT/artifacts-$t
	mkdir -p "$corpus" "$artifacts"
	for f in $(seeds "$t"); do
		cp "$f" "$corpus/seed-$(basename "$f")"
	done
	# JPEGs and image archives are not committed: PIL makes small ones (when it can)
	[ "$t" = fuzz_data ] && ${PYTHON:-/usr/bin/python3} tools/fuzz_seeds.py "$corpus" 2>/dev/null
	dict=
	case $t in fuzz_pickle | fuzz_pth | fuzz_scan) dict=-dict=tests/fuzz/pth.dict ;; fuzz_safetensors) dict=-dict=tests/fuzz/st.dict ;; esac
	echo "fuzz.sh: running $t for ${SECONDS_EACH}s (corpus $corpus)"
	# shellcheck disable=SC2086
	"$bin" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -max_total_time="$SECONDS_EACH" -workers=1 \
		-print_final_stats=1 -artifact_prefix="$artifacts/" $dict "$corpus" 2>"$OUT/$t.log"
	rc=$?
	grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|cov:' "$OUT/$t.log" | tail -3
	if [ $rc -ne 0 ]; then
		echo "fuzz.sh: $t FAILED (exit $rc): see $OUT/$t.log and $artifacts/" >&2
		grep -E 'ERROR|SUMMARY' "$OUT/$t.log" | head -5 >&2
		status=1
	fi
done
exit $status
