#!/bin/sh
# make bench: vggtl against Python (Debian 12's torch 1.13, and Debian 13's torch 2.6 in the root
# of tools/torch26-root.sh, which must see BENCH_DIR: keep it inside the repository) on the
# same machine, in the same run, on a full-size VGG16 (+ add_linear) checkpoint of 553 MB. Each command runs REPEAT times
# (default 3, after one warm-up so both sides read from the page cache); the table shows the
# median wall time and the median peak RSS, and the ratios Python / vggtl.
set -eu
V=${1:-build/vggtl}
PY=${PYTHON:-/usr/bin/python3}
D=${BENCH_DIR:-build/bench}
REPEAT=${REPEAT:-3}
mkdir -p "$D"

# The image row: decoding and resizing a folder of 1000 JPEGs (500x375, made by PIL once, in
# $D/jpeg1000) to 224x224, then ToTensor + Normalize, in images/s: vggtl's loader
# ($BUILD/tools/bench_images, one thread) against torchvision's ImageFolder + DataLoader with
# the same number of workers (0: the main process loads, as vggtl does), REPEAT runs of each
# alternating, medians.  BENCH_ONLY=images (or make bench-images) runs this row alone.
image_row() {
	B=${BENCH_IMAGES_BIN:-$(dirname "$V")/tools/bench_images}
	J=$D/jpeg1000
	[ -d "$J/train" ] || "$PY" tools/make_jpegs.py "$J" 1000
	vs= ps= i=0
	while [ $i -lt "$REPEAT" ]; do
		vs="$vs $("$B" "$J" 224 | sed 's/.*"images_per_s": \([0-9.]*\).*/\1/')"
		ps="$ps $("$PY" tools/bench_images.py "$J" 224 0 | sed 's/.*"images_per_s": \([0-9.]*\).*/\1/')"
		i=$((i + 1))
	done
	echo "| images: decode + resize to 224x224 + ToTensor/Normalize, 1000 JPEGs, 1 worker | vggtl img/s | torchvision img/s | speed |"
	echo "|------------------------------------------|----------|----------|---------|"
	# shellcheck disable=SC2086 # the lists are meant to split
	printf '%s\n' "$vs" "$ps" | awk -v all="vggtl$vs / torchvision$ps" '
		function med(s,   n, a, i, j, t) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int((n + 1) / 2)] }
		NR == 1 { v = med($0) } NR == 2 { p = med($0) }
		END { printf "| %-40s | %8.1f | %8.1f | %7.2fx |\n", "ImageFolder of 1000 JPEGs at 224x224", v, p, v / p; printf "%s img/s\n", all > "/dev/stderr" }'
}
if [ "${BENCH_ONLY:-}" = images ]; then
	image_row
	exit 0
fi

if [ ! -s "$D/vgg16_full.pth" ]; then
	echo "bench: writing the 553 MB VGG16 checkpoints with Python..." >&2
	"$PY" - "$D" <<'PYEOF'
import sys, torch, torchvision
from torch import nn
d = sys.argv[1]
torch.manual_seed(0)
m = torchvision.models.vgg16()
m.classifier.add_module('add_linear', nn.Linear(1000, 10))
torch.save(m, d + "/vgg16_full.pth")
torch.save(m.state_dict(), d + "/vgg16_weights.pth")
PYEOF
fi

# measure COMMAND...: prints "seconds kib", the medians over REPEAT runs
measure() {
	"$@" >/dev/null 2>&1 # warm-up
	i=0
	: >"$D/times"
	while [ $i -lt "$REPEAT" ]; do
		s=$(date +%s%N)
		/usr/bin/time -f "%M" -o "$D/t1" "$@" >/dev/null 2>"$D/err" || { cat "$D/err" >&2; exit 1; }
		e=$(date +%s%N)
		echo "$(((e - s) / 1000)) $(tail -n 1 "$D/t1")" | awk '{ printf "%.4f %d\n", $1 / 1e6, $2 }' >>"$D/times"
		i=$((i + 1))
	done
	t=$(cut -d' ' -f1 "$D/times" | sort -n | sed -n "$(((REPEAT + 1) / 2))p")
	m=$(cut -d' ' -f2 "$D/times" | sort -n | sed -n "$(((REPEAT + 1) / 2))p")
	echo "$t $m"
}

# torch 2.6 (Debian 13's, in the root of tools/torch26-root.sh) as a second Python, when the
# root can be had; its column reads "-" otherwise
PY26=
if [ "${BENCH_TORCH26:-1}" = 1 ] && sh tools/torch26-root.sh >/dev/null 2>&1; then
	PY26="sh tools/torch26-root.sh run python3"
fi
# py26 ARGS...: "seconds kib" of the same Python command under torch 2.6, or "- -"
py26() {
	if [ -n "$PY26" ]; then
		# shellcheck disable=SC2086 # PY26 is a command line
		measure $PY26 "$@"
	else
		echo "- -"
	fi
}

# row TASK "vggtl seconds kib" "python 1.13 seconds kib" ["python 2.6 seconds kib"]: the
# ratios are against the faster (and the leaner) of the two Pythons
row() {
	set -- "$1" $2 $3 ${4:-- -}
	awk -v task="$1" -v vt="$2" -v vm="$3" -v pt="$4" -v pm="$5" -v qt="$6" -v qm="$7" 'BEGIN {
		vt0 = vt < 0.001 ? 0.001 : vt;
		bt = pt; bm = pm;
		if (qt != "-") { if (qt + 0 < bt + 0) bt = qt; if (qm + 0 < bm + 0) bm = qm; q = sprintf("%8.3f | %8.1f", qt, qm / 1024) }
		else q = sprintf("%8s | %8s", "-", "-");
		printf "| %-40s | %8.4f | %8.1f | %8.3f | %8.1f | %s | %7.1fx | %7.1fx |\n", task, vt, vm / 1024, pt, pm / 1024, q, bt / vt0, bm / vm
	}'
}

F=$D/vgg16_full.pth
W=$D/vgg16_weights.pth
echo "| task (553 MB VGG16 + add_linear)          | vggtl s  | vggtl MiB| py1.13 s | 1.13 MiB | py2.6 s  | 2.6 MiB  | speed   | memory  |"
echo "|------------------------------------------|----------|----------|----------|----------|----------|----------|---------|---------|"
# the Python side of each row, the same script for both torches
LOAD_FULL='import sys, torch; print(torch.load(sys.argv[1], weights_only=False))'
LOAD_SD='import sys, torch, torchvision; from torch import nn
m = torchvision.models.vgg16(); m.classifier.add_module("add_linear", nn.Linear(1000, 10))
m.load_state_dict(torch.load(sys.argv[1])); print(m)'
TO_SD='import sys, torch; torch.save(torch.load(sys.argv[1], weights_only=False).state_dict(), sys.argv[2])'
TO_FULL='import sys, torch, torchvision; from torch import nn
m = torchvision.models.vgg16(); m.classifier.add_module("add_linear", nn.Linear(1000, 10))
m.load_state_dict(torch.load(sys.argv[1])); torch.save(m, sys.argv[2])'
row "load + print, whole model" "$(measure "$V" load "$F")" "$(measure "$PY" -c "$LOAD_FULL" "$F")" \
	"$(py26 -c "$LOAD_FULL" "$F")"
row "load + print, state_dict" "$(measure "$V" load "$W")" "$(measure "$PY" -c "$LOAD_SD" "$W")" \
	"$(py26 -c "$LOAD_SD" "$W")"
row "whole -> state_dict (save-weights)" "$(measure "$V" save-weights "$F" -o "$D/out_v.pth")" \
	"$(measure "$PY" -c "$TO_SD" "$F" "$D/out_p.pth")" "$(py26 -c "$TO_SD" "$F" "$D/out_p.pth")"
row "state_dict -> whole (save-full)" "$(measure "$V" save-full "$W" -o "$D/out_v.pth")" \
	"$(measure "$PY" -c "$TO_FULL" "$W" "$D/out_p.pth")" "$(py26 -c "$TO_FULL" "$W" "$D/out_p.pth")"
row "fresh vgg16 + add_linear (extend --arch)" "$(measure "$V" extend --arch vgg16 --add-linear 1000:10 -o "$D/out_v.pth")" \
	"$(measure "$PY" -c 'import sys, torch, torchvision; from torch import nn
m = torchvision.models.vgg16(); m.classifier.add_module("add_linear", nn.Linear(1000, 10)); torch.save(m, sys.argv[1])' "$D/out_p.pth")"
# many small tensors: storage lookups must not grow with the square of their number
if [ ! -s "$D/many_legacy.pth" ]; then
	"$PY" -c 'import sys, torch
torch.save({f"w{i}": torch.zeros(1) for i in range(100000)}, sys.argv[1], _use_new_zipfile_serialization=False)' \
		"$D/many_legacy.pth"
fi
row "load --tensors, 100k tensors (legacy)" "$(measure "$V" load --tensors "$D/many_legacy.pth")" \
	"$(measure "$PY" -c 'import sys, torch
for k, v in torch.load(sys.argv[1]).items(): print(k, v.dtype, list(v.shape))' "$D/many_legacy.pth")"
# scan: picklescan's approach is a pickletools.genops walk over every pickle that records the
# globals; vggtl scan runs the same pickles through its recording VM (globals and calls)
cat >"$D/genops_scan.py" <<'PYEOF'
import pickletools, sys, zipfile
def walk(f):
    found, strings = [], []
    for op, arg, _ in pickletools.genops(f):
        if op.name in ("GLOBAL", "INST"):
            found.append(arg)
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.append(strings[-2] + " " + strings[-1])
        elif isinstance(arg, str):
            strings.append(arg)
    return found
path, n = sys.argv[1], 0
if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.endswith(".pkl"):
                with z.open(name) as f:
                    n += len(walk(f))
else:
    with open(path, "rb") as f:
        for _ in range(5):  # a legacy stream: magic, version, sys_info, object, keys
            n += len(walk(f))
print(n, "globals")
PYEOF
row "scan, whole model" "$(measure "$V" scan "$F")" "$(measure "$PY" "$D/genops_scan.py" "$F")"
row "scan, 100k tensors (legacy)" "$(measure "$V" scan "$D/many_legacy.pth")" \
	"$(measure "$PY" "$D/genops_scan.py" "$D/many_legacy.pth")"
# any model: a torchvision resnet50 saved whole; Python needs torchvision to open it, vggtl does not
if [ ! -s "$D/resnet50_full.pth" ]; then
	"$PY" -c 'import sys, torch, torchvision; torch.save(torchvision.models.resnet50(), sys.argv[1])' "$D/resnet50_full.pth"
fi
row "resnet50 whole: load + print" "$(measure "$V" load "$D/resnet50_full.pth")" \
	"$(measure "$PY" -c "$LOAD_FULL" "$D/resnet50_full.pth")" "$(py26 -c "$LOAD_FULL" "$D/resnet50_full.pth")"
row "resnet50 whole -> state_dict" "$(measure "$V" save-weights "$D/resnet50_full.pth" -o "$D/out_v.pth")" \
	"$(measure "$PY" -c "$TO_SD" "$D/resnet50_full.pth" "$D/out_p.pth")" \
	"$(py26 -c "$TO_SD" "$D/resnet50_full.pth" "$D/out_p.pth")"
echo
cpt=$(measure cp "$F" "$D/out_cp.pth")
cps=$(measure sh -c 'cp "$1" "$2" && sync "$2"' sh "$F" "$D/out_cp.pth")
vt=$(measure "$V" save-weights "$F" -o "$D/out_v.pth")
vs=$(measure "$V" save-weights "$F" -o "$D/out_v.safetensors")
echo "$cpt $cps $vt" | awk '{ printf "conversion vs copying the same file: cp %.3f s, cp + sync %.3f s, vggtl save-weights (fsync included) %.3f s = %.2fx cp, %.2fx cp + sync (target <= 1.2x)\n", $1, $3, $5, $5 / $1, $5 / $3 }'
echo "$cps $vs" | awk '{ printf "to safetensors: vggtl save-weights -o x.safetensors %.3f s, %.1f MiB = %.2fx cp + sync\n", $3, $4 / 1024, $3 / $1 }'
rm -f "$D/out_v.safetensors"
ext=$(measure "$V" extend --arch vgg16 --add-linear 1000:10 -o "$D/out_v.pth")
echo "$cps $ext" | awk '{ printf "fresh weights: vggtl extend --arch vgg16 (138M normals made on every CPU, fsync included) %.3f s = %.2fx cp + sync of its file (target <= 2x)\n", $3, $3 / $1 }'
echo "(speed and memory columns: Python / vggtl; greater is better for vggtl)"

# Training and evaluation: VGG16 + add_linear on the bundled sample (32x32, batch 64), both
# sides with the same thread count; images/s as each tool measures its own loop (vggtl's
# frozen run includes computing the cached features), peak memory of the whole process;
# medians of REPEAT runs of each side, the runs alternating, every run on stderr.
if [ "${BENCH_TRAIN:-1}" = 1 ]; then
	T=${THREADS:-$(nproc)}
	DATA=${BENCH_DATA:-data}
	IMAGES=${BENCH_IMAGES:-256}
	"$V" extend --arch vgg16 --add-linear 1000:10 --style weights -o "$D/v16.pth"
	# median NUMBER...: the middle value (lower middle for an even count)
	median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
	# trainrow TASK MODE EPOCHS VGGTL-ARGS...: each side runs REPEAT times, medians shown
	trainrow() {
		task=$1 mode=$2 ep=$3 prec=$4
		shift 4
		n=$IMAGES
		[ "$mode" = eval ] && n=500 # vggtl eval takes the whole split of the sample
		vis= vms= pis= pms= qis= qms=
		i=0
		while [ $i -lt "$REPEAT" ]; do
			rm -f "$D/m.jsonl"
			/usr/bin/time -f "%M" -o "$D/t1" "$V" "$@" --threads "$T" >"$D/out" 2>"$D/err" ||
				{ cat "$D/err" >&2; exit 1; }
			vms="$vms $(tail -n 1 "$D/t1")"
			if [ "$mode" = eval ]; then
				vis="$vis $(grep '"images_per_s"' "$D/out" | tr -dc '0-9.\n' | head -n 1)"
			else
				vis="$vis $(awk -v n="$IMAGES" -v ep="$ep" '
					/feature_cache_seconds/ { match($0, /"feature_cache_seconds": [0-9.]+/); t += substr($0, RSTART + 26, RLENGTH - 26) }
					/train_seconds/ { match($0, /"train_seconds": [0-9.]+/); t += substr($0, RSTART + 17, RLENGTH - 17) }
					END { printf "%.2f", n * ep / t }' "$D/m.jsonl")"
			fi
			/usr/bin/time -f "%M" -o "$D/t1" "$PY" tools/bench_train.py "$mode" "$T" "$n" "$ep" "$DATA" "$prec" >"$D/out" 2>"$D/err" ||
				{ cat "$D/err" >&2; exit 1; }
			pms="$pms $(tail -n 1 "$D/t1")"
			pis="$pis $(sed 's/.*"images_per_s": \([0-9.]*\).*/\1/' "$D/out")"
			if [ -n "$PY26" ]; then
				# shellcheck disable=SC2086 # PY26 is a command line
				/usr/bin/time -f "%M" -o "$D/t1" $PY26 tools/bench_train.py "$mode" "$T" "$n" "$ep" "$DATA" "$prec" >"$D/out" 2>"$D/err" ||
					{ cat "$D/err" >&2; exit 1; }
				qms="$qms $(tail -n 1 "$D/t1")"
				qis="$qis $(sed 's/.*"images_per_s": \([0-9.]*\).*/\1/' "$D/out")"
			fi
			i=$((i + 1))
		done
		# shellcheck disable=SC2086 # the lists are meant to split
		echo "$mode $prec $ep $(median $vis) $(median $pis) $([ -n "$qis" ] && median $qis || echo -)" >>"$D/rates"
		# shellcheck disable=SC2086
		awk -v task="$task" -v vi="$(median $vis)" -v vm="$(median $vms)" -v pi="$(median $pis)" -v pm="$(median $pms)" \
			-v qi="$(median $qis)" -v qm="$(median $qms)" -v all="vggtl $vis / python 1.13 $pis / 2.6 $qis" 'BEGIN {
			bi = pi; bm = pm;
			if (qi != "") { if (qi + 0 > bi + 0) bi = qi; if (qm + 0 < bm + 0) bm = qm; q = sprintf("%8.1f | %8.1f", qi, qm / 1024) }
			else q = sprintf("%8s | %8s", "-", "-");
			printf "| %-40s | %8.1f | %8.1f | %8.1f | %8.1f | %s | %7.2fx | %7.1fx |\n", task, vi, vm / 1024, pi, pm / 1024, q, vi / bi, bm / vm
			printf "%s img/s\n", all > "/dev/stderr" }'
	}
	echo
	echo "| training, $IMAGES images, $T threads          | vggtl img/s | vggtl MiB | py1.13 img/s | 1.13 MiB | py2.6 img/s | 2.6 MiB | speed | memory |"
	echo "|------------------------------------------|----------|----------|----------|----------|----------|----------|---------|---------|"
	rm -f "$D/rates"
	peak=$("$PY" tools/bench_peak.py peak "$T")
	# bf16 rows where the CPU does bf16 in hardware (BENCH_BF16=1 forces them: emulated, slow)
	bf16=${BENCH_BF16:-$(echo "$peak" | grep -q '"bf16_hw": true' && echo 1 || echo 0)}
	for prec in fp32 $([ "$bf16" = 1 ] && echo bf16); do
		pa="--precision $prec"
		[ "$prec" = bf16 ] && export VGGTL_CPU_BF16=1
		# shellcheck disable=SC2086 # pa is two words
		trainrow "full fine-tuning (1 epoch, $prec)" full 1 "$prec" train "$D/v16.pth" --data "$DATA" --limit "$IMAGES" \
			--epochs 1 --no-augment --metrics "$D/m.jsonl" $pa
		# shellcheck disable=SC2086
		trainrow "--freeze features (5 epochs, $prec)" freeze 5 "$prec" train "$D/v16.pth" --data "$DATA" --limit "$IMAGES" \
			--epochs 5 --freeze features --no-augment --metrics "$D/m.jsonl" $pa
		# shellcheck disable=SC2086
		trainrow "eval (500 images, $prec)" eval 1 "$prec" eval "$D/v16.pth" --data "$DATA" --split train --batch-size 64 \
			--json $pa
	done
	echo "(targets: full >= 1.3x, frozen >= 5x, eval >= 1.5x Python, each bf16 row >= 1.3x torch's autocast; speed and memory against the better torch)"
	[ "$bf16" = 1 ] || echo "(no bf16 rows: this CPU has no AVX512_BF16 or AMX, so vggtl refuses bf16 and torch emulates it; BENCH_BF16=1 runs them anyway)"
	echo
	"$PY" tools/bench_peak.py report "$peak" "$D/rates"
	rm -f "$D/v16.pth" "$D/m.jsonl" "$D/out" "$D/err" "$D/t1" "$D/rates"
fi
echo
image_row
[ "${BENCH_DIST:-1}" = 1 ] && sh tools/bench_dist.sh "$V"
rm -f "$D"/out_*.pth "$D/t1" "$D/times" "$D/err" "$D/genops_scan.py"
