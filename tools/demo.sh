#!/bin/sh
# make demo: the seed workflow of the PyTorch tutorial, end to end, without Python:
#   vgg16 = torchvision.models.vgg16(); print(vgg16)
#   vgg16.classifier.add_module('add_linear', nn.Linear(1000, 10)); print(vgg16)
#   torch.save(vgg16, "vgg16_method1.pth"); torch.save(vgg16.state_dict(), "vgg16_method2.pth")
#   load both back and print them.
#   then fine-tunes a network on the bundled sample and evaluates it.
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
# Fine-tuning on the bundled CIFAR-10-format sample (data/). Without downloaded ImageNet
# weights every network starts from scratch; a VGG with batch norm learns this sample in a
# few CPU epochs, while a plain VGG16 needs pretrained weights (--pretrained) to do so quickly.
step "$V" extend --arch vgg11_bn --replace-last 10 --style weights -o "$D/vgg11bn_cifar.pth"
step "$V" train "$D/vgg11bn_cifar.pth" --epochs 3 -o "$D/vgg11bn_tuned.pth" --checkpoint-dir "$D/checkpoints" \
	--metrics "$D/metrics.jsonl" --plot "$D/curves.png"
step "$V" eval "$D/vgg11bn_tuned.pth"
echo
echo "demo: done; the checkpoints are in $D (load them in Python with torch.load)"
