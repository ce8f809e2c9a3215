#!/bin/sh
# make demo: the seed workflow of the PyTorch tutorial, end to end, without Python:
#   vgg16 = torchvision.models.vgg16(); print(vgg16)
#   vgg16.classifier.add_module('add_linear', nn.Linear(1000, 10)); print(vgg16)
#   torch.save(vgg16, "vgg16_method1.pth"); torch.save(vgg16.state_dict(), "vgg16_method2.pth")
#   load both back and print them.
#   then fine-tunes the extended network (in its batch-norm form) on the bundled sample.
# Files go to build/demo (a few 500 MB checkpoints).
set -eu
V=${1:-build/vggtl}
D=${DEMO_DIR:-build/demo}
mkdir -p "$D"
step() {
	echo
	echo "\$ $*"
	"$@"
}
step "$V" load --arch vgg16
step "$V" extend --arch vgg16 --seed 1 --add-linear 1000:10 -o "$D/vgg16_cifar.pth"
step "$V" load "$D/vgg16_cifar.pth"
step "$V" save-full "$D/vgg16_cifar.pth" -o "$D/vgg16_method1.pth"
step "$V" save-weights "$D/vgg16_method1.pth" -o "$D/vgg16_method2.pth"
step "$V" load "$D/vgg16_method1.pth"
step "$V" load "$D/vgg16_method2.pth"
step "$V" load --tensors "$D/vgg16_method2.pth"
step "$V" verify "$D/vgg16_method1.pth" "$D/vgg16_method2.pth"
# Fine-tuning the extended model on the bundled CIFAR-10-format sample (data/). Without
# downloaded ImageNet weights every network starts from scratch: the same extension of a
# VGG16 with batch norm learns this sample in three CPU epochs, while a plain VGG16 needs
# torchvision's weights (--arch vgg16 --pretrained) to fine-tune that quickly.
step "$V" extend --arch vgg16_bn --seed 1 --add-linear 1000:10 --style weights -o "$D/vgg16bn_cifar.pth"
step "$V" train "$D/vgg16bn_cifar.pth" --epochs 3 -o "$D/vgg16bn_tuned.pth" --checkpoint-dir "$D/checkpoints" \
	--metrics "$D/metrics.jsonl" --plot "$D/curves.png"
step "$V" eval "$D/vgg16bn_tuned.pth"
echo
echo "demo: done; the checkpoints are in $D (load them in Python with torch.load)"
