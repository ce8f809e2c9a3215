/* vt_data.h - image classification data: CIFAR-10 (binary and python versions, their folders
 * or their .tar.gz archives as downloaded) and ImageFolder trees of PNG and JPEG files, as
 * folders or inside .zip/.tar/.tar.gz/.tgz/.tar.xz archives, turned into float batches with
 * torchvision's transforms (Resize((S, S)) on PIL images, ToTensor, Normalize).
 *
 * A dataset is held whole in memory as uint8 CHW planes (CIFAR-10's own layout): 50000
 * CIFAR images are 150 MB.  Nothing is downloaded.
 */
#ifndef VT_DATA_H
#define VT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "vt_err.h"
#include "vt_pth.h"

struct vt_dataset {
	int n;                 /* images */
	int h, w;              /* every image has this size */
	unsigned char *pixels; /* n x 3 x h x w, uint8, CHW per image (owned) */
	int64_t *labels;       /* n class indices (owned) */
	int nclasses;
	char **class_names;    /* nclasses names (owned); "class<i>" when the source names none */
};

/* Loads split "train" or "test" from path:
 *  - a folder holding cifar-10-batches-py/ or cifar-10-batches-bin/ (what torchvision's
 *    CIFAR10(root) downloads into), or one of those folders itself;
 *  - cifar-10-python.tar.gz or cifar-10-binary.tar.gz, or a folder holding one of them;
 *  - an ImageFolder tree: path/<split>/<class>/<image>.png|.jpg|.jpeg, classes sorted by
 *    name, every image converted to RGB as PIL's convert('RGB') does and resized to
 *    size x size as PIL's resize(BILINEAR) does;
 *  - a .zip, .tar, .tar.gz, .tgz or .tar.xz archive holding CIFAR-10's batches (in their
 *    cifar-10-batches-py/ or -bin/ folder) or such a tree (<split>/<class>/... at its root
 *    or under its one top folder), read as a stream, never unpacked; entries whose names
 *    escape the archive ("../", absolute) make it an error.
 * size is used for image trees only (CIFAR is 32x32). Errors name the file and what was wrong. */
int vt_data_load(struct vt_dataset *d, const char *path, const char *split, int size, struct vt_err *err);
/* Only the class names (nclasses, class_names; n = 0) of what vt_data_load would load: an
 * image tree's class folders are listed without reading an image; CIFAR sources are read
 * as vt_data_load reads them. */
int vt_data_load_names(struct vt_dataset *d, const char *path, const char *split, struct vt_err *err);
void vt_data_release(struct vt_dataset *d);

/* One image resized to size x size into chw (3 x size x size uint8): a PNG (any colour type
 * and depth libpng handles) or a JPEG (libjpeg-turbo: baseline, progressive, greyscale,
 * CMYK), told apart by their first bytes.  name is for messages. */
int vt_image_load(const char *path, int size, unsigned char *chw, struct vt_err *err);
int vt_image_decode(const void *data, size_t len, const char *name, int size, unsigned char *chw,
		    struct vt_err *err);
/* The same for one format only: a file of another format is an error. */
int vt_png_load(const char *path, int size, unsigned char *chw, struct vt_err *err);
int vt_png_decode(const void *data, size_t len, const char *name, int size, unsigned char *chw,
		  struct vt_err *err);
int vt_jpeg_decode(const void *data, size_t len, const char *name, int size, unsigned char *chw,
		   struct vt_err *err);
/* PIL's Image.resize((size, size), BILINEAR) of h rows of w RGB pixels (rgb, interleaved),
 * written as 3 planes of size x size into chw. */
int vt_image_resize(const unsigned char *rgb, int w, int h, int size, unsigned char *chw, struct vt_err *err);

/* torchvision-equivalent transforms for a batch:
 * ToTensor (x / 255), then when augment: RandomCrop(h, padding=4) (zero padding) and
 * RandomHorizontalFlip(0.5); then when mean/std are given: Normalize(mean, std). */
struct vt_transform {
	int augment;
	const float *mean, *std; /* 3 values each, or NULL for no normalisation */
};

extern const float vt_cifar10_mean[3], vt_cifar10_std[3];     /* (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616) */
extern const float vt_imagenet_mean[3], vt_imagenet_std[3];   /* (0.485, 0.456, 0.406), (0.229, 0.224, 0.225) */

/* Writes images idx[0..n) of d, transformed, as n x 3 x h x w floats into out. rng draws the
 * crop offsets and flips (unused without augment). */
void vt_data_batch(const struct vt_dataset *d, const int *idx, int n, const struct vt_transform *t,
		   struct vt_rng *rng, float *out);

#endif
