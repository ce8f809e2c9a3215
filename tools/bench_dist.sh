#!/bin/sh
# bench_dist.sh - part of make bench (tools/bench.sh), or alone: sh tools/bench_dist.sh build/vggtl
# vggtl train on 1 rank with every CPU against 2 ranks on this machine (started by hand with
# the launcher's variables, as torchrun would) sharing them: images/s of one epoch of full
# fine-tuning and of 5 frozen epochs, VGG16 + add_linear, the same global batch (64) and
# images. Each side runs REPEAT times; the medians are shown. On a 2-core machine 2 ranks of 1
# thread cannot beat 1 rank of 2: the row shows what the all-reduce costs.
set -eu
V=${1:-build/vggtl}
D=${BENCH_DIR:-build/bench}
REPEAT=${REPEAT:-3}
DATA=${BENCH_DATA:-data}
IMAGES=${BENCH_IMAGES:-256}
T=${THREADS:-$(nproc)}
T2=$((T / 2 > 0 ? T / 2 : 1))
mkdir -p "$D"
"$V" extend --arch vgg16 --add-linear 1000:10 --style weights -o "$D/dist16.pth"
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
# ips IMAGES METRICS: IMAGES over the epochs' train seconds and the feature cache's
ips() { awk '/train_seconds/ { match($0, /"train_seconds": [0-9.]+/); t += substr($0, RSTART + 17, RLENGTH - 17) }
	/feature_cache_seconds/ { match($0, /"feature_cache_seconds": [0-9.]+/); t += substr($0, RSTART + 26, RLENGTH - 26) }
	END { printf "%.2f", img / t }' img="$1" "$2"; }
# distrow TASK EPOCHS ARGS...
distrow() {
	task=$1 ep=$2
	shift 2
	one= two= i=0
	while [ $i -lt "$REPEAT" ]; do
		rm -f "$D/dm1.jsonl" "$D/dm2.jsonl"
		env -u RANK -u WORLD_SIZE "$V" train "$D/dist16.pth" "$@" --batch-size 64 --threads "$T" --metrics "$D/dm1.jsonl" \
			>/dev/null 2>"$D/derr" || { cat "$D/derr" >&2; exit 1; }
		one="$one $(ips $((IMAGES * ep)) "$D/dm1.jsonl")"
		port=$((29500 + $$ % 1000 + i))
		for r in 1 0; do
			WORLD_SIZE=2 RANK=$r LOCAL_RANK=$r LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
				"$V" train "$D/dist16.pth" "$@" --batch-size 32 --threads "$T2" --dist-timeout 600 \
				--metrics "$D/dm2.jsonl" >/dev/null 2>"$D/derr$r" &
		done
		wait || { cat "$D/derr0" "$D/derr1" >&2; exit 1; }
		two="$two $(ips $((IMAGES * ep)) "$D/dm2.jsonl")"
		i=$((i + 1))
	done
	# shellcheck disable=SC2086 # the lists are meant to split
	awk -v task="$task" -v a="$(median $one)" -v b="$(median $two)" -v all="1 rank$one / 2 ranks$two" 'BEGIN {
		printf "| %-34s | %13.1f | %15.1f | %6.2fx |\n", task, a, b, b / a; printf "%s img/s\n", all > "/dev/stderr" }'
}
echo
echo "| data-parallel, $IMAGES images, $T CPUs      | 1 rank x $T thr | 2 ranks x $T2 thr | 2 / 1 |"
echo "|------------------------------------|---------------|-----------------|---------|"
distrow "full fine-tuning (1 epoch)" 1 --data "$DATA" --limit "$IMAGES" --epochs 1 --no-augment
distrow "--freeze features (5 epochs)" 5 --data "$DATA" --limit "$IMAGES" --epochs 5 --freeze features --no-augment
echo "(images/s over the whole epochs, feature cache included; global batch 64 on both sides)"
rm -f "$D/dist16.pth" "$D/dm1.jsonl" "$D/dm2.jsonl" "$D/derr" "$D/derr0" "$D/derr1"
