#!/bin/sh
# test_cli.sh - the command line contract without Python: help, usage errors (exit 2),
# bad files (exit 1), the fresh-architecture repr, and crash-safe writes (SIGKILL, ulimit -f).
# Prints TAP lines.
. "$(dirname "$0")/tap.sh"
status() { # status EXPECTED DESCRIPTION COMMAND...: exit status and a one-line stderr message
	want=$1
	d=$2
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	if [ "$got" -eq "$want" ] && { [ "$want" -eq 0 ] || [ -s "$T/err" ]; }; then
		ok "$d (exit $got)"
	else
		nok "$d (exit $got, wanted $want)"
		sed 's/^/# /' "$T/err"
	fi
}

status 0 "vggtl help" "$V" help
check "help lists every command" grep -q "save-weights" "$T/out"
status 2 "no command" "$V"
status 2 "unknown command" "$V" frobnicate
for c in load extend save-full save-weights verify; do
	status 0 "$c -h" "$V" $c -h
	check "$c -h prints usage" grep -q "^usage: vggtl $c" "$T/out"
done
status 2 "load without a model" "$V" load
status 2 "load with an unknown option" "$V" load --frob x.pth
status 2 "unknown architecture" "$V" load --arch vgg17
status 2 "--seed wants an integer" "$V" load --arch vgg16 --seed abc
status 2 "extend without -o" "$V" extend --arch vgg16 --add-linear 1000:10
status 2 "extend with a bad IN:OUT" "$V" extend --arch vgg16 --add-linear 1000x10 -o "$T/x.pth"
status 2 "extend with IN not the classifier width" "$V" extend --arch vgg16 --add-linear 999:10 -o "$T/x.pth"
check "the message names the expected width" grep -q "IN must be 1000" "$T/err"
check "nothing was written" test ! -e "$T/x.pth"
status 2 "extend with both edits" "$V" extend --arch vgg16 --add-linear 1000:10 --replace-last 10 -o "$T/x.pth"
status 1 "missing file" "$V" load "$T/nope.pth"
printf 'hello\n' >"$T/text.pth"
status 1 "text file" "$V" load "$T/text.pth"
: >"$T/empty.pth"
status 1 "empty file" "$V" load "$T/empty.pth"
check "the message names the file" grep -q "empty.pth" "$T/err"
status 1 "pretrained weights missing" env TORCH_HOME="$T/th" "$V" load --arch vgg16 --pretrained
check "the message names the expected path" grep -q "$T/th/hub/checkpoints/vgg16-397923af.pth" "$T/err"
check "the message names the download URL" grep -q "https://download.pytorch.org/models/vgg16-397923af.pth" "$T/err"

# the fresh architecture prints as torchvision does (spot checks; the interop test compares all)
status 0 "load --arch vgg16" "$V" load --arch vgg16
check "vgg16 has 13 convolutions" test "$(grep -c Conv2d "$T/out")" -eq 13
check "the last layer is Linear(4096, 1000)" grep -q "(6): Linear(in_features=4096, out_features=1000, bias=True)" "$T/out"
status 0 "load --arch vgg11_bn" "$V" load --arch vgg11_bn
check "BatchNorm2d prints eps and momentum as Python does" grep -q "BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)" "$T/out"
status 0 "load --arch vgg16 --json" "$V" load --arch vgg16 --json
check "--json lists 32 tensors" test "$(grep -c '"dtype"' "$T/out")" -eq 32

# a small checkpoint to work with: vgg11 weights, about 531 MB
status 0 "extend --arch vgg11 --style weights" "$V" extend --arch vgg11 --add-linear 1000:10 --style weights -o "$T/a.pth"
status 0 "load the written file" "$V" load "$T/a.pth"
check "it has add_linear" grep -q "(add_linear): Linear(in_features=1000, out_features=10, bias=True)" "$T/out"
status 0 "verify the written file" "$V" verify "$T/a.pth"
status 2 "-o equal to the input is refused" "$V" save-full "$T/a.pth" -o "$T/a.pth"
status 0 "same seed, same file (1/2)" "$V" extend --arch vgg11 --add-linear 1000:10 --style weights -o "$T/b.pth"
check "same seed, same file (2/2)" cmp -s "$T/a.pth" "$T/b.pth"

# crash safety: a killed or size-limited write leaves the previous file intact
cp "$T/a.pth" "$T/keep.pth"
# kill_mid_write DESCRIPTION COMMAND...: SIGKILL as soon as the temporary output exists
kill_mid_write() {
	d=$1
	shift
	"$@" &
	pid=$!
	i=0
	while [ $i -lt 2000 ] && ! ls "$T"/.keep.pth.tmp.* >/dev/null 2>&1 && kill -0 $pid 2>/dev/null; do
		sleep 0.01
		i=$((i + 1))
	done
	seen=$(ls "$T"/.keep.pth.tmp.* 2>/dev/null)
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	if [ -n "$seen" ] && cmp -s "$T/a.pth" "$T/keep.pth"; then ok "$d"; else nok "$d"; fi
	rm -f "$T"/.keep.pth.tmp.* # what a killed process cannot clean up
}
kill_mid_write "SIGKILL during save-full leaves the previous file intact" "$V" save-full "$T/b.pth" -o "$T/keep.pth"
kill_mid_write "SIGKILL during extend leaves the previous file intact" \
	"$V" extend --arch vgg16 --add-linear 1000:10 -o "$T/keep.pth"
status 1 "a file-size limit gives an error" sh -c "ulimit -f 10000; exec '$V' save-weights '$T/b.pth' -o '$T/keep.pth'"
check "the error says the write failed" grep -q "cannot write" "$T/err"
check "...and the previous file is intact" cmp -s "$T/a.pth" "$T/keep.pth"
check "...and no temporary file is left" test -z "$(ls -A "$T" | grep '\.tmp\.')"
head -c 300000000 "$T/a.pth" >"$T/trunc.pth"
status 1 "a truncated checkpoint" "$V" load "$T/trunc.pth"
echo "1..$n"
