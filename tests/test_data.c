/* test_data.c - the data module (src/data.c, data_png.c, data_jpeg.c, data_archive.c, resize.c).
 *
 * CIFAR-10: the python fixtures (tests/fixtures/cifar-py, made with numpy by
 * tests/fixtures/make_cifar_py.py), the binary version of the same images written here, and
 * both .tar.gz archives must give the same pixels and labels, which follow pix() and label()
 * below (the fixture script uses the same formulas).  Refusals: wrong record sizes, hostile
 * or malformed pickles, corrupt archives, a missing folder; every prefix of a pickle, a
 * binary batch and an archive fails cleanly.  PNG trees: every colour type and depth written
 * here with libpng against known values; files made by PIL (tests/fixtures/make_png.py)
 * against the bytes PIL's convert('RGB') + resize((32, 32), BILINEAR) gave; refusals.  Batches: ToTensor and Normalize
 * against values computed once with torchvision, RandomCrop + RandomHorizontalFlip against an
 * explicit pad-crop-flip.  JPEGs written here with libjpeg: every prefix a clean error or the
 * whole image, greyscale to three planes; image trees in tar archives: order, class names,
 * refusals (a climbing name, a 300 MB claim, a truncated member).  PIL's and torchvision's
 * side of JPEGs and archives is tests/test_images.py.  And the bundled sample in data/ loads.
 * Scratch files go to a fresh /tmp/vt_data_XXXXXX, removed at the end unless VT_TEST_KEEP
 * is set.  Run from the repository root (fixture paths are relative).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ftw.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <jpeglib.h>

#include "harness.h"
#include "vt_data.h"

static char tmp[64];

/* ---- files -------------------------------------------------------------------------------- */

static char *path_of(const char *rel)
{
	static char bufs[4][512];
	static int k;
	char *p = bufs[k++ % 4];

	snprintf(p, sizeof(bufs[0]), "%s/%s", tmp, rel);
	return p;
}

static void mkdirs(const char *rel)
{
	char p[512];
	size_t i;

	snprintf(p, sizeof(p), "%s/%s", tmp, rel);
	for (i = strlen(tmp) + 1; p[i]; i++)
		if (p[i] == '/') {
			p[i] = '\0';
			mkdir(p, 0755);
			p[i] = '/';
		}
	mkdir(p, 0755);
}

static int write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f)
		return -1;
	ok = fwrite(data, 1, n, f) == n;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static unsigned char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p = NULL;
	long len;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (p = malloc((size_t)len + 1)) && fread(p, 1, (size_t)len, f) == (size_t)len) {
		*n = (size_t)len;
	} else {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void rm_rf(const char *p)
{
	nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int has(const struct vt_err *err, const char *s)
{
	return strstr(err->msg, s) != NULL;
}

/* ---- the CIFAR fixtures' images ----------------------------------------------------------- */

static unsigned pix(int i, int c, int y, int x)
{
	return (unsigned)(i * 53 + c * 97 + y * 9 + x * 5 + ((x ^ y) & 7) * 16) & 255;
}

static int label(int i)
{
	return (i * 7 + 3) % 10;
}

static const int train_ids[] = { 0, 1, 2 }, test_ids[] = { 100, 101 };
static const char *const cifar_names[] = { "airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
					   "horse", "ship", "truck" };

static void write_bin(const char *rel, const int *ids, int n)
{
	unsigned char *buf = malloc((size_t)n * 3073);
	int k, c, y, x;

	for (k = 0; k < n; k++) {
		unsigned char *r = buf + (size_t)k * 3073;
		r[0] = (unsigned char)label(ids[k]);
		for (c = 0; c < 3; c++)
			for (y = 0; y < 32; y++)
				for (x = 0; x < 32; x++)
					r[1 + c * 1024 + y * 32 + x] = (unsigned char)pix(ids[k], c, y, x);
	}
	write_file(path_of(rel), buf, (size_t)n * 3073);
	free(buf);
}

static void write_meta_txt(const char *rel)
{
	char text[200] = "";
	int i;

	for (i = 0; i < 10; i++) {
		strcat(text, cifar_names[i]);
		strcat(text, i == 4 ? "\r\n" : "\n"); /* a Windows line ending in the middle */
	}
	strcat(text, "\n\n");
	write_file(path_of(rel), text, strlen(text));
}

/* Is d the fixture's split: ids, formula pixels and labels, CIFAR-10 class names? */
static int is_fixture(const struct vt_dataset *d, const int *ids, int n, int named)
{
	int k, c, y, x;

	if (d->n != n || d->h != 32 || d->w != 32 || d->nclasses != 10 || !d->pixels || !d->labels)
		return 0;
	for (k = 0; k < n; k++) {
		if (d->labels[k] != label(ids[k]))
			return 0;
		for (c = 0; c < 3; c++)
			for (y = 0; y < 32; y++)
				for (x = 0; x < 32; x++)
					if (d->pixels[(size_t)k * 3072 + (size_t)(c * 1024 + y * 32 + x)] != pix(ids[k], c, y, x))
						return 0;
	}
	for (k = 0; k < 10; k++) {
		char want[16];
		snprintf(want, sizeof(want), "class%d", k);
		if (strcmp(d->class_names[k], named ? cifar_names[k] : want) != 0)
			return 0;
	}
	return 1;
}

static void check_load(const char *path, const char *split, int named, const char *what)
{
	struct vt_dataset d;
	struct vt_err err = { 0 };
	int train = strcmp(split, "train") == 0;
	int rc = vt_data_load(&d, path, split, 32, &err);

	CHECK(rc == 0 && is_fixture(&d, train ? train_ids : test_ids, train ? 3 : 2, named),
	      "%s (%s): %s split = the fixture images (rc %d: %s)", what, path, split, rc, rc ? err.msg : "");
	vt_data_release(&d);
}

/* Loads path and expects code with msg containing s1 (and s2 when not NULL). */
static void check_fail(const char *path, const char *split, int code, const char *s1, const char *s2,
		       const char *what)
{
	struct vt_dataset d;
	struct vt_err err = { 0 };
	int rc = vt_data_load(&d, path, split, 32, &err);

	CHECK((code ? rc == code : rc < 0) && has(&err, s1) && (!s2 || has(&err, s2)) && d.pixels == NULL,
	      "%s: code %d, message with '%s' (got %d: %s)", what, code, s1, rc, err.msg);
	if (rc == 0)
		vt_data_release(&d);
}

static void test_cifar_formats(void)
{
	static const char *const bad[][3] = {
		/* fixture, expected code (as text), message part */
		{ "dtype_f4", "-3", "numpy dtype 'f4' is not supported" },
		{ "fortran", "-3", "Fortran-order" },
		{ "shape", "-2", "expected (N, 3072)" },
		{ "ndim3", "-3", "3 dimensions" },
		{ "labels_count", "-2", "one per image" },
		{ "labels_range", "-2", "label 10, but there are 10 classes" },
		{ "object", "-3", "numpy dtype 'O'" },
		{ "cifar100", "-2", "CIFAR-100 is not supported" },
		{ "not_dict", "-2", "does not hold a dict" },
	};
	size_t i;

	/* python version: the torchvision root, the folder itself */
	check_load("tests/fixtures/cifar-py", "train", 1, "python root");
	check_load("tests/fixtures/cifar-py", "test", 1, "python root");
	check_load("tests/fixtures/cifar-py/cifar-10-batches-py", "train", 1, "python folder");
	/* binary version of the same images */
	mkdirs("bin/cifar-10-batches-bin");
	write_bin("bin/cifar-10-batches-bin/data_batch_1.bin", train_ids, 2);
	write_bin("bin/cifar-10-batches-bin/data_batch_2.bin", train_ids + 2, 1);
	write_bin("bin/cifar-10-batches-bin/test_batch.bin", test_ids, 2);
	write_meta_txt("bin/cifar-10-batches-bin/batches.meta.txt");
	write_file(path_of("bin/cifar-10-batches-bin/readme.html"), "x", 1);
	check_load(path_of("bin"), "train", 1, "binary root");
	check_load(path_of("bin"), "test", 1, "binary root");
	check_load(path_of("bin/cifar-10-batches-bin"), "train", 1, "binary folder");
	/* archives, given directly or through the folder holding them */
	check_load("tests/fixtures/cifar-tgz/py", "train", 1, "python archive folder");
	check_load("tests/fixtures/cifar-tgz/py/cifar-10-python.tar.gz", "test", 1, "python archive");
	check_load("tests/fixtures/cifar-tgz/bin/cifar-10-binary.tar.gz", "train", 1, "binary archive");
	check_load("tests/fixtures/cifar-tgz/bin", "test", 1, "binary archive folder");

	/* no batches.meta.txt: classes are class0..class9 */
	mkdirs("nometa");
	write_bin("nometa/test_batch.bin", test_ids, 2);
	check_load(path_of("nometa"), "test", 0, "binary folder without names");
	check_fail(path_of("nometa"), "train", VT_ENOTFOUND, "no train batch", "data_batch_1.bin",
		   "a folder without training batches");

	/* data_batch_N in numeric order: 10 after 2 */
	mkdirs("order");
	write_bin("order/data_batch_10.bin", train_ids + 2, 1);
	write_bin("order/data_batch_2.bin", train_ids, 2);
	write_file(path_of("order/data_batch_x.bin"), "junk", 4); /* not a batch name: ignored */
	check_load(path_of("order"), "train", 0, "batches 2 and 10");

	/* refusals */
	{
		unsigned char rec[3074] = { 0 };
		mkdirs("badsize");
		write_file(path_of("badsize/data_batch_1.bin"), rec, sizeof(rec));
		check_fail(path_of("badsize"), "train", VT_EFORMAT, "data_batch_1.bin' is 3074 bytes",
			   "not a whole number of 3073-byte", "a record of the wrong size");
		write_file(path_of("badsize/data_batch_1.bin"), rec, 0);
		check_fail(path_of("badsize"), "train", VT_EFORMAT, "is 0 bytes", NULL, "an empty batch");
		rec[0] = 10;
		write_file(path_of("badsize/data_batch_1.bin"), rec, 3073);
		check_fail(path_of("badsize"), "train", VT_EFORMAT, "image 0 has label 10, but there are 10 classes",
			   "data_batch_1.bin", "a label out of range");
	}
	check_fail("/nonexistent/cifar", "train", VT_ENOTFOUND,
		   "no CIFAR-10 or image folder found at '/nonexistent/cifar'", "cifar-10-batches-py/", "a missing path");
	mkdirs("empty");
	check_fail(path_of("empty"), "train", VT_ENOTFOUND, "no CIFAR-10 or image folder found at", "expected",
		   "an empty folder");
	check_fail("tests/fixtures/cifar-py", "val", VT_EUSAGE, "split must be 'train' or 'test'", NULL, "a bad split");
	check_fail("tests/fixtures/make_cifar_py.py", "train", VT_EFORMAT, "is not a zip, tar, tar.gz, tgz or tar.xz archive", NULL,
		   "a file that is not an archive");

	/* a pickle that would run os.system in Python */
	{
		static const unsigned char evil[] = "\x80\x02}q\x00(U\x04" "dataq\x01" "cos\nsystem\nq\x02U\x05"
						    "touch\x85R" "u.";
		mkdirs("evil/cifar-10-batches-py");
		write_file(path_of("evil/cifar-10-batches-py/data_batch_1"), evil, sizeof(evil) - 1);
		check_fail(path_of("evil"), "train", VT_EUNSAFE, "global 'os.system' is not allowed", "data_batch_1",
			   "a hostile global");
	}
	/* malformed numpy content */
	mkdirs("bad/cifar-10-batches-py");
	{
		size_t n;
		unsigned char *meta = read_file("tests/fixtures/cifar-py/cifar-10-batches-py/batches.meta", &n);
		write_file(path_of("bad/cifar-10-batches-py/batches.meta"), meta, n);
		free(meta);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char src[256], what[64];
		size_t n;
		unsigned char *p;
		snprintf(src, sizeof(src), "tests/fixtures/cifar-py-bad/%s", bad[i][0]);
		p = read_file(src, &n);
		CHECK(p != NULL, "fixture %s readable", src);
		if (!p)
			continue;
		write_file(path_of("bad/cifar-10-batches-py/data_batch_1"), p, n);
		free(p);
		snprintf(what, sizeof(what), "bad pickle '%s'", bad[i][0]);
		check_fail(path_of("bad"), "train", atoi(bad[i][1]), bad[i][2], "data_batch_1", what);
	}
}

/* ---- tar.gz built here: headers the fixtures do not have ---------------------------------- */

struct buf {
	unsigned char *p;
	size_t n, cap;
};

static void buf_add(struct buf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2;
		b->p = realloc(b->p, b->cap);
	}
	if (n)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

/* One ustar member; bad_sum corrupts its checksum, claim overstates its size. */
static void tar_add(struct buf *b, const char *name, char type, const void *data, size_t n, int bad_sum,
		    size_t claim)
{
	unsigned char h[512], zero[512] = { 0 };
	unsigned sum = 0;
	int i;

	memset(h, 0, sizeof(h));
	memcpy(h, name, strlen(name) < 100 ? strlen(name) : 100);
	memcpy(h + 100, "0000644", 8);
	memcpy(h + 108, "0000000", 8);
	memcpy(h + 116, "0000000", 8);
	snprintf((char *)h + 124, 12, "%011o", (unsigned)(claim ? claim : n));
	memcpy(h + 136, "00000000000", 12);
	h[156] = (unsigned char)type;
	memcpy(h + 257, "ustar\0" "00", 8);
	memset(h + 148, ' ', 8);
	for (i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum + (unsigned)bad_sum);
	buf_add(b, h, 512);
	buf_add(b, data, n);
	buf_add(b, zero, (512 - n % 512) % 512);
}

static void write_gz(const char *path, const struct buf *b)
{
	z_stream z;
	unsigned char *out = malloc(b->n + 1024);

	memset(&z, 0, sizeof(z));
	deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	z.next_in = b->p;
	z.avail_in = (uInt)b->n;
	z.next_out = out;
	z.avail_out = (uInt)(b->n + 1024);
	deflate(&z, Z_FINISH);
	write_file(path, out, z.total_out);
	deflateEnd(&z);
	free(out);
}

static void test_archives(void)
{
	unsigned char zero[1024] = { 0 }, rec[3073];
	struct buf b = { 0 };
	int k;

	for (k = 0; k < 3073; k++)
		rec[k] = (unsigned char)(k == 0 ? 4 : k * 7);
	/* a GNU long name for the batch itself, a pax path for the meta file, no end blocks */
	{
		const char *longname = "cifar-10-batches-bin/data_batch_1.bin";
		const char *kv = "path=cifar-10-batches-bin/batches.meta.txt";
		char pax[80];
		struct vt_dataset d;
		struct vt_err err = { 0 };
		int rc;
		tar_add(&b, "././@LongLink", 'L', longname, strlen(longname) + 1, 0, 0);
		tar_add(&b, "truncated-name", '0', rec, sizeof(rec), 0, 0);
		snprintf(pax, sizeof(pax), "%zu %s\n", strlen(kv) + 4, kv); /* 2 digits, space, newline */
		tar_add(&b, "PaxHeaders/x", 'x', pax, strlen(pax), 0, 0);
		tar_add(&b, "meta", '0', "a\nb\nc\nd\ne\n", 10, 0, 0);
		tar_add(&b, "cifar-10-batches-bin/sub", '5', NULL, 0, 0, 0);
		write_gz(path_of("t1.tar.gz"), &b);
		rc = vt_data_load(&d, path_of("t1.tar.gz"), "train", 32, &err);
		CHECK(rc == 0 && d.n == 1 && d.labels[0] == 4 && d.nclasses == 5 && strcmp(d.class_names[4], "e") == 0 &&
		      memcmp(d.pixels, rec + 1, 3072) == 0,
		      "GNU long name, pax path, no end-of-archive blocks: one image, 5 classes (rc %d: %s)", rc,
		      rc ? err.msg : "");
		vt_data_release(&d);
	}
	/* gzip members concatenated, then trailing zeros */
	{
		struct buf b2 = { 0 };
		size_t n1, n2;
		unsigned char *p1, *p2;
		struct vt_dataset d;
		struct vt_err err = { 0 };
		int rc;
		tar_add(&b2, "cifar-10-batches-bin/test_batch.bin", '0', rec, sizeof(rec), 0, 0);
		write_gz(path_of("a.gz"), &b2);
		b2.n = 0;
		buf_add(&b2, zero, 1024);
		write_gz(path_of("b.gz"), &b2);
		p1 = read_file(path_of("a.gz"), &n1);
		p2 = read_file(path_of("b.gz"), &n2);
		b2.n = 0;
		buf_add(&b2, p1, n1);
		buf_add(&b2, p2, n2);
		buf_add(&b2, zero, 7);
		write_file(path_of("t2.tar.gz"), b2.p, b2.n);
		rc = vt_data_load(&d, path_of("t2.tar.gz"), "test", 32, &err);
		CHECK(rc == 0 && d.n == 1 && strcmp(d.class_names[0], "class0") == 0,
		      "concatenated gzip members and trailing zeros (rc %d: %s)", rc, rc ? err.msg : "");
		vt_data_release(&d);
		free(p1);
		free(p2);
		free(b2.p);
	}
	b.n = 0;
	tar_add(&b, "cifar-10-batches-bin/data_batch_1.bin", '0', rec, sizeof(rec), 1, 0);
	write_gz(path_of("t3.tar.gz"), &b);
	check_fail(path_of("t3.tar.gz"), "train", VT_EFORMAT, "is not a zip, tar, tar.gz, tgz or tar.xz archive", "t3.tar.gz",
		   "a tar header with a bad checksum");
	b.n = 0;
	tar_add(&b, "other/data_batch_1.bin", '0', rec, sizeof(rec), 0, 0);
	buf_add(&b, zero, 1024);
	write_gz(path_of("t4.tar.gz"), &b);
	check_fail(path_of("t4.tar.gz"), "train", VT_ENOTFOUND, "holds no cifar-10-batches-py/ or cifar-10-batches-bin/",
		   NULL, "an archive without CIFAR members");
	b.n = 0;
	tar_add(&b, "cifar-10-batches-bin/data_batch_1.bin", '0', rec, sizeof(rec), 0, 100000);
	write_gz(path_of("t5.tar.gz"), &b);
	check_fail(path_of("t5.tar.gz"), "train", VT_EFORMAT, "Truncated tar archive", "cifar-10-batches-bin/data_batch_1.bin",
		   "a member longer than the archive");
	/* a corrupt byte in the deflate data */
	{
		size_t n;
		unsigned char *p = read_file("tests/fixtures/cifar-tgz/py/cifar-10-python.tar.gz", &n);
		if (p) {
			p[n / 2] ^= 0x55;
			write_file(path_of("t6.tar.gz"), p, n);
			free(p);
		}
		check_fail(path_of("t6.tar.gz"), "train", 0, "t6.tar.gz", NULL, "a corrupt archive");
	}
	free(b.p);
}

/* Every prefix of a fixture, written as rel, fails to load (except lengths ok() accepts). */
static void sweep(const char *fixture, const char *rel, const char *load, const char *split,
		  int (*ok)(size_t len), const char *what)
{
	size_t n, len, bad = 0;
	unsigned char *p = read_file(fixture, &n);

	CHECK(p != NULL, "%s readable", fixture);
	if (!p)
		return;
	for (len = 0; len < n; len++) {
		struct vt_dataset d;
		struct vt_err err = { 0 };
		int rc;
		write_file(path_of(rel), p, len);
		rc = vt_data_load(&d, path_of(load), split, 32, &err);
		if (ok && ok(len))
			; /* a valid file: no expectation */
		else if (rc == 0 || rc > 0 || err.msg[0] == '\0') {
			if (bad++ < 3)
				printf("# %s: prefix of %zu bytes: rc %d (%s)\n", what, len, rc, err.msg);
		}
		if (rc == 0)
			vt_data_release(&d);
	}
	CHECK(bad == 0, "%s: every one of %zu prefixes fails with a message (%zu did not)", what, n, bad);
	free(p);
}

static int whole_records(size_t len)
{
	return len > 0 && len % 3073 == 0;
}

static void test_truncation(void)
{
	size_t n;
	unsigned char *meta = read_file("tests/fixtures/cifar-py/cifar-10-batches-py/batches.meta", &n);

	mkdirs("sweep/py/cifar-10-batches-py");
	if (meta) {
		write_file(path_of("sweep/py/cifar-10-batches-py/batches.meta"), meta, n);
		free(meta);
	}
	sweep("tests/fixtures/cifar-py/cifar-10-batches-py/data_batch_1", "sweep/py/cifar-10-batches-py/data_batch_1",
	      "sweep/py", "train", NULL, "python batch (protocol 2, bytes keys)");
	sweep("tests/fixtures/cifar-py/cifar-10-batches-py/data_batch_2", "sweep/py/cifar-10-batches-py/data_batch_1",
	      "sweep/py", "train", NULL, "python batch (protocol 4, str keys)");
	meta = read_file("tests/fixtures/cifar-py/cifar-10-batches-py/data_batch_1", &n);
	if (meta) {
		write_file(path_of("sweep/py/cifar-10-batches-py/data_batch_1"), meta, n);
		free(meta);
	}
	sweep("tests/fixtures/cifar-py/cifar-10-batches-py/batches.meta", "sweep/py/cifar-10-batches-py/batches.meta",
	      "sweep/py", "train", NULL, "python batches.meta");
	sweep("tests/fixtures/cifar-tgz/py/cifar-10-python.tar.gz", "sweep/p.tar.gz", "sweep/p.tar.gz", "train", NULL,
	      "python .tar.gz");
	sweep("tests/fixtures/cifar-tgz/bin/cifar-10-binary.tar.gz", "sweep/b.tar.gz", "sweep/b.tar.gz", "test", NULL,
	      "binary .tar.gz");
	mkdirs("sweep/bin");
	sweep(path_of("bin/cifar-10-batches-bin/data_batch_1.bin"), "sweep/bin/data_batch_1.bin", "sweep/bin", "train",
	      whole_records, "binary batch (whole records excepted)");
}

/* ---- JPEG (PIL's side is tests/test_images.py) ------------------------------------------- */

/* A w x h JPEG of a gradient, written with libjpeg: 1 or 3 components, progressive or not. */
static unsigned char *make_jpeg(int w, int h, int comps, int progressive, unsigned long *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	unsigned char *out = NULL, *row = malloc((size_t)w * (size_t)comps);
	int x;

	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	*len = 0;
	jpeg_mem_dest(&c, &out, len);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = comps;
	c.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, 90, TRUE);
	if (progressive)
		jpeg_simple_progression(&c);
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		JSAMPROW r[1] = { row };
		for (x = 0; x < w * comps; x++)
			row[x] = (unsigned char)(x * 5 + (int)c.next_scanline * 3);
		jpeg_write_scanlines(&c, r, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	return out;
}

static void test_jpeg(void)
{
	static unsigned char full[3 * 16 * 16], chw[3 * 16 * 16];
	int prog;

	for (prog = 0; prog < 2; prog++) {
		unsigned long n;
		unsigned char *p = make_jpeg(40, 24, 3, prog, &n);
		struct vt_err err = { 0 };
		size_t len, bad = 0, whole = 0;
		int rc = vt_jpeg_decode(p, n, "x.jpg", 16, full, &err);
		CHECK(rc == 0, "a %s JPEG decodes (rc %d: %s)", prog ? "progressive" : "baseline", rc, err.msg);
		for (len = 0; len < n; len++) {
			rc = vt_image_decode(p, len, "cut.jpg", 16, chw, &err);
			if (rc == 0)
				whole++;
			if ((rc != 0 && (rc != VT_EFORMAT || !has(&err, "cut.jpg"))) || (rc == 0 && memcmp(chw, full, sizeof(full))))
				if (bad++ < 3)
					printf("# prefix of %zu bytes: rc %d (%s)\n", len, rc, err.msg);
		}
		CHECK(bad == 0 && whole <= 2, "every prefix of a %s JPEG of %lu bytes: a clean error naming it, or "
		      "the whole image when only the end marker is cut (%zu did not, %zu whole)",
		      prog ? "progressive" : "baseline", n, bad, whole);
		free(p);
	}
	{
		unsigned long n;
		unsigned char *p = make_jpeg(9, 5, 1, 0, &n);
		struct vt_err err = { 0 };
		int rc = vt_jpeg_decode(p, n, "g.jpg", 9, chw, &err), same = rc == 0, i;
		for (i = 0; same && i < 9 * 9; i++)
			same = chw[i] == chw[81 + i] && chw[i] == chw[162 + i];
		CHECK(same, "a greyscale JPEG becomes three equal planes (rc %d: %s)", rc, err.msg);
		rc = vt_png_decode(p, n, "g.jpg", 9, chw, &err);
		CHECK(rc == VT_EFORMAT && has(&err, "is not a PNG file"), "vt_png_decode refuses a JPEG: %s", err.msg);
		free(p);
	}
}

/* ---- image trees in archives (the full comparison with torchvision: tests/test_images.py) -- */

static void test_image_archives(void)
{
	struct buf b = { 0 };
	unsigned long n;
	unsigned char *jpg = make_jpeg(10, 6, 3, 0, &n);
	unsigned char zero[1024] = { 0 };
	struct vt_dataset d;
	struct vt_err err = { 0 };
	int rc;

	/* one top folder; the archive's order is not the dataset's; a later copy of a path wins */
	tar_add(&b, "pets/", '5', NULL, 0, 0, 0);
	tar_add(&b, "pets/train/dog/b.jpg", '0', jpg, n, 0, 0);
	tar_add(&b, "pets/train/cat/z.JPEG", '0', jpg, n, 0, 0);
	tar_add(&b, "pets/train/cat/a/a.jpg", '0', jpg, n, 0, 0);
	tar_add(&b, "pets/train/dog/b.jpg", '0', jpg, n, 0, 0);
	tar_add(&b, "pets/train/readme.txt", '0', "x", 1, 0, 0);
	buf_add(&b, zero, 1024);
	write_file(path_of("pets.tar"), b.p, b.n);
	rc = vt_data_load(&d, path_of("pets.tar"), "train", 8, &err);
	CHECK(rc == 0 && d.n == 3 && d.nclasses == 2 && strcmp(d.class_names[0], "cat") == 0 && d.labels[0] == 0 &&
	      d.labels[1] == 0 && d.labels[2] == 1 && d.h == 8,
	      "a tar of pets/train/<class>/...: 3 images, 2 classes in order (rc %d: %s)", rc, rc ? err.msg : "");
	if (rc == 0)
		vt_data_release(&d);
	rc = vt_data_load_names(&d, path_of("pets.tar"), "train", &err);
	CHECK(rc == 0 && d.n == 0 && d.nclasses == 2 && strcmp(d.class_names[1], "dog") == 0,
	      "the class names alone (rc %d: %s)", rc, rc ? err.msg : "");
	if (rc == 0)
		vt_data_release(&d);
	check_fail(path_of("pets.tar"), "test", VT_ENOTFOUND, "no image tree test/<class>/<image>", "pets.tar",
		   "a tar without the split");
	/* class folders and no image (a fuzzer's find) */
	b.n = 0;
	tar_add(&b, "train/cat/", '5', NULL, 0, 0, 0);
	tar_add(&b, "train/dog/x.txt", '0', "x", 1, 0, 0);
	write_gz(path_of("empty.tar.gz"), &b);
	check_fail(path_of("empty.tar.gz"), "train", VT_ENOTFOUND, "class folder 'train/cat' holds no image", NULL,
		   "an archive whose class folders hold no image");
	b.n = 0;
	tar_add(&b, "train/cat/../../x.jpg", '0', jpg, n, 0, 0);
	write_gz(path_of("dots.tar.gz"), &b);
	check_fail(path_of("dots.tar.gz"), "train", VT_EUNSAFE, "'train/cat/../../x.jpg' escapes the archive", "dots.tar.gz",
		   "a member whose name climbs out");
	b.n = 0;
	tar_add(&b, "train/cat/big.jpg", '0', jpg, n, 0, (size_t)300 << 20);
	write_gz(path_of("big.tar.gz"), &b);
	check_fail(path_of("big.tar.gz"), "train", VT_EUNSUPPORTED, "member 'train/cat/big.jpg' is 314572800 bytes (at most",
		   NULL, "a member claiming 300 MB");
	b.n = 0;
	tar_add(&b, "train/cat/bad.jpg", '0', jpg, n / 2, 0, 0);
	write_gz(path_of("cutjpg.tar.gz"), &b);
	check_fail(path_of("cutjpg.tar.gz"), "train", VT_EFORMAT, "cutjpg.tar.gz: train/cat/bad.jpg': corrupt or truncated JPEG",
		   NULL, "a truncated JPEG inside an archive");
	free(b.p);
	free(jpg);
}

/* ---- PNG ---------------------------------------------------------------------------------- */

static unsigned rgb8(int x, int y, int c)
{
	return (unsigned)(x * 7 + y * 13 + c * 50) & 255;
}

static unsigned grey8(int x, int y)
{
	return (unsigned)(x * 5 + y * 3) & 255;
}

enum kind { K_RGB8, K_GREY8, K_RGBA8, K_RGB16, K_GREY16, K_PAL, K_GREY1, K_GA8, K_RGB8_INTERLACED, K_GRAD16 };

static const unsigned char palette[4][3] = { { 10, 20, 30 }, { 200, 100, 50 }, { 0, 255, 0 }, { 90, 90, 250 } };

/* What the loader should give for pixel (x, y) channel c of an image of this kind. */
static unsigned expect_px(enum kind k, int x, int y, int c)
{
	switch (k) {
	case K_GREY8:
	case K_GREY16:
	case K_GA8:
		return grey8(x, y);
	case K_PAL:
		return palette[(x + y * 3) & 3][c];
	case K_GREY1:
		return (x + y) & 1 ? 255 : 0;
	default:
		return rgb8(x, y, c);
	}
}

static int write_png(const char *path, enum kind k, int w, int h)
{
	static const int types[] = { PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_RGB_ALPHA, PNG_COLOR_TYPE_RGB,
				     PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_PALETTE, PNG_COLOR_TYPE_GRAY,
				     PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_GRAY };
	int depth = k == K_RGB16 || k == K_GREY16 || k == K_GRAD16 ? 16 : k == K_GREY1 ? 1 : 8;
	int ch = k == K_RGBA8 ? 4 : k == K_RGB8 || k == K_RGB16 || k == K_RGB8_INTERLACED ? 3 : k == K_GA8 ? 2 : 1;
	size_t bps = depth == 16 ? 2 : 1, rowbytes = (size_t)w * (size_t)ch * bps;
	unsigned char *img = malloc(rowbytes * (size_t)h);
	png_bytep *rows = malloc((size_t)h * sizeof(*rows));
	FILE *f = fopen(path, "wb");
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	int x, y, c;

	if (!f || !img || !rows || !png || !info || setjmp(png_jmpbuf(png)))
		return -1;
	for (y = 0; y < h; y++) {
		rows[y] = img + (size_t)y * rowbytes;
		for (x = 0; x < w; x++)
			for (c = 0; c < ch; c++) {
				unsigned v;
				unsigned char *p = rows[y] + ((size_t)x * (size_t)ch + (size_t)c) * bps;
				switch (k) {
				case K_GREY8:
					v = grey8(x, y);
					break;
				case K_GA8:
					v = c == 0 ? grey8(x, y) : (unsigned)(x * 9) & 255;
					break;
				case K_RGBA8:
					v = c < 3 ? rgb8(x, y, c) : (unsigned)(x * y) & 255;
					break;
				case K_RGB16:
					v = rgb8(x, y, c) * 256 + (unsigned)(x * 3 + 1);
					break;
				case K_GREY16:
					v = grey8(x, y) * 256 + 77;
					break;
				case K_GRAD16:
					v = (unsigned)(16 * x) * 256;
					break;
				case K_PAL:
					v = (unsigned)(x + y * 3) & 3;
					break;
				case K_GREY1:
					v = (unsigned)(x + y) & 1;
					break;
				default:
					v = rgb8(x, y, c);
				}
				if (bps == 2) {
					p[0] = (unsigned char)(v >> 8);
					p[1] = (unsigned char)v;
				} else {
					p[0] = (unsigned char)v;
				}
			}
	}
	png_init_io(png, f);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, types[k],
		     k == K_RGB8_INTERLACED ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		     PNG_FILTER_TYPE_DEFAULT);
	if (k == K_PAL) {
		png_color pal[4];
		png_byte trans[2] = { 0, 128 };
		for (x = 0; x < 4; x++) {
			pal[x].red = palette[x][0];
			pal[x].green = palette[x][1];
			pal[x].blue = palette[x][2];
		}
		png_set_PLTE(png, info, pal, 4);
		png_set_tRNS(png, info, trans, 2, NULL);
	}
	png_write_info(png, info);
	if (depth < 8)
		png_set_packing(png);
	png_write_image(png, rows);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	fclose(f);
	free(img);
	free(rows);
	return 0;
}

static int image_is(const unsigned char *chw, enum kind k, int size)
{
	int x, y, c;

	for (c = 0; c < 3; c++)
		for (y = 0; y < size; y++)
			for (x = 0; x < size; x++)
				if (chw[(c * size + y) * size + x] != expect_px(k, x, y, c))
					return 0;
	return 1;
}

static void test_png(void)
{
	static const struct {
		const char *cls, *file;
		enum kind k;
	} tree[] = {
		{ "b", "2_rgb.png", K_RGB8 },     { "b", "1_grey.PNG", K_GREY8 }, { "B", "rgba.png", K_RGBA8 },
		{ "B", "rgb16.png", K_RGB16 },    { "a", "pal.png", K_PAL },      { "a", "grey1.png", K_GREY1 },
		{ "a", "ga.png", K_GA8 },         { "a", "interlaced.png", K_RGB8_INTERLACED },
		{ "a", "grey16.png", K_GREY16 },
	};
	/* expected order: classes B < a < b (byte order), files sorted within each */
	static const enum kind order[] = { K_RGBA8, K_RGB16, K_GA8, K_GREY1, K_GREY16, K_RGB8_INTERLACED, K_PAL,
					   K_GREY8, K_RGB8 };
	struct vt_dataset d;
	struct vt_err err = { 0 };
	unsigned char chw[3 * 32 * 32];
	size_t i;
	int rc, ok = 1, x, y, c;

	mkdirs("img/train/b");
	mkdirs("img/train/B");
	mkdirs("img/train/a");
	for (i = 0; i < sizeof(tree) / sizeof(tree[0]); i++) {
		char rel[128];
		snprintf(rel, sizeof(rel), "img/train/%s/%s", tree[i].cls, tree[i].file);
		ok &= write_png(path_of(rel), tree[i].k, 32, 32) == 0;
	}
	write_file(path_of("img/train/a/notes.txt"), "ignored", 7);
	write_file(path_of("img/train/b/Thumbs.db"), "ignored", 7);
	CHECK(ok, "test PNGs written");

	for (i = 0; i < sizeof(tree) / sizeof(tree[0]); i++) {
		char rel[128];
		snprintf(rel, sizeof(rel), "img/train/%s/%s", tree[i].cls, tree[i].file);
		rc = vt_png_load(path_of(rel), 32, chw, &err);
		CHECK(rc == 0 && image_is(chw, tree[i].k, 32), "PNG %s: decoded to the expected RGB (rc %d: %s)",
		      tree[i].file, rc, rc ? err.msg : "");
	}
	rc = vt_data_load(&d, path_of("img"), "train", 32, &err);
	CHECK(rc == 0 && d.n == 9 && d.nclasses == 3 && d.h == 32 && d.w == 32,
	      "image folder: 9 images in 3 classes (rc %d: %s)", rc, rc ? err.msg : "");
	if (rc == 0) {
		CHECK(strcmp(d.class_names[0], "B") == 0 && strcmp(d.class_names[1], "a") == 0 &&
		      strcmp(d.class_names[2], "b") == 0, "classes sorted by byte value: B, a, b");
		ok = 1;
		for (i = 0; i < 9; i++) {
			ok &= image_is(d.pixels + i * 3072, order[i], 32);
			ok &= d.labels[i] == (i < 2 ? 0 : i < 7 ? 1 : 2);
		}
		CHECK(ok, "image folder: files sorted within classes, pixels and labels as expected");
		vt_data_release(&d);
	}

	/* decoding and resizing against PIL: tests/fixtures/make_png.py saved what
	 * Image.open(f).convert('RGB').resize((32, 32), BILINEAR) gives for each file */
	{
		static const char *const pil[] = { "rgb_45x37", "grey_20x12", "pal_trns_100x50", "rgba_33x31",
						   "la_32x32", "rgb_32x120", "grey_trns_24x24", "rgb_trns_30x30" };
		for (i = 0; i < sizeof(pil) / sizeof(pil[0]); i++) {
			char png[128], raw[128];
			size_t n = 0;
			unsigned char *want;
			int diff = 0;
			snprintf(png, sizeof(png), "tests/fixtures/png/%s.png", pil[i]);
			snprintf(raw, sizeof(raw), "tests/fixtures/png/%s.rgb", pil[i]);
			want = read_file(raw, &n);
			rc = vt_png_load(png, 32, chw, &err);
			for (c = 0; c < 3 && want && n == 3072; c++)
				for (y = 0; y < 32; y++)
					for (x = 0; x < 32; x++)
						diff += chw[(c * 32 + y) * 32 + x] != want[(y * 32 + x) * 3 + c];
			CHECK(rc == 0 && want && n == 3072 && diff == 0, "%s: the bytes PIL's convert('RGB') and "
			      "resize((32, 32), BILINEAR) give (%d differ; rc %d %s)", pil[i], diff, rc, rc ? err.msg : "");
			free(want);
		}
	}
	/* upscaling by hand: a 16-wide ramp 0, 16, .. 240 interpolated between pixel centres */
	write_png(path_of("small.png"), K_GRAD16, 16, 16); /* grey 16*x, x = 0..15 */
	rc = vt_png_load(path_of("small.png"), 32, chw, &err);
	CHECK(rc == 0 && chw[0] == 0 && chw[1] == 4 && chw[2] == 12 && chw[3] == 20 && chw[30] == 236 &&
	      chw[31] == 240 && chw[2 * 1024 + 5 * 32 + 2] == 12,
	      "16x16 -> 32x32: 0 4 12 20 .. 236 240 along a row (got %d %d %d %d .. %d %d)", chw[0], chw[1], chw[2],
	      chw[3], chw[30], chw[31]);

	/* refusals */
	{
		size_t n;
		unsigned char *p = read_file(path_of("img/train/b/2_rgb.png"), &n);
		size_t len, bad = 0;
		unsigned char full[3 * 32 * 32];
		vt_png_load(path_of("img/train/b/2_rgb.png"), 32, full, &err);
		mkdirs("corrupt/train/x");
		if (p) {
			p[n - 20] ^= 0xff; /* inside the IDAT data or its CRC */
			write_file(path_of("corrupt/train/x/bad.png"), p, n);
			p[n - 20] ^= 0xff;
		}
		check_fail(path_of("corrupt"), "train", VT_EFORMAT, "bad.png': corrupt PNG", NULL, "a corrupt PNG");
		/* every prefix: an error, or (cut after the pixels) the whole image */
		for (len = 0; p && len < n; len++) {
			write_file(path_of("cut.png"), p, len);
			rc = vt_png_load(path_of("cut.png"), 32, chw, &err);
			if ((rc != 0 && (!has(&err, "cut.png") || rc != VT_EFORMAT)) || (rc == 0 && memcmp(chw, full, sizeof(full))))
				bad++;
		}
		CHECK(p && bad == 0, "every prefix of a PNG: a clean error or the whole image (%zu not)", bad);
		free(p);
	}
	write_file(path_of("notpng.png"), "GIF89a....", 10);
	rc = vt_png_load(path_of("notpng.png"), 32, chw, &err);
	CHECK(rc == VT_EFORMAT && has(&err, "notpng.png' is not a PNG file"), "a GIF named .png: %s", err.msg);
	rc = vt_png_load(path_of("nothere.png"), 32, chw, &err);
	CHECK(rc == VT_ENOTFOUND && has(&err, "cannot open"), "a missing PNG: %s", err.msg);

	mkdirs("jpg/train/x");
	write_png(path_of("jpg/train/x/a.png"), K_RGB8, 8, 8);
	write_file(path_of("jpg/train/x/b.JPG"), "\xff\xd8", 2);
	check_fail(path_of("jpg"), "train", VT_EFORMAT, "b.JPG' is not a PNG or JPEG file", NULL,
		   "a two-byte .JPG in the tree");
	write_file(path_of("jpg/train/x/b.JPG"), "\xff\xd8\xff\xe0", 4);
	check_fail(path_of("jpg"), "train", VT_EFORMAT, "b.JPG': corrupt or truncated JPEG", NULL,
		   "a .JPG cut after its first marker");
	remove(path_of("jpg/train/x/b.JPG"));
	write_file(path_of("jpg/train/x/c.Bmp"), "BM", 2);
	check_fail(path_of("jpg"), "train", VT_EUNSUPPORTED, "c.Bmp': only PNG and JPEG images are supported", NULL,
		   "a BMP in the tree");
	/* images in subfolders of a class folder count, in torchvision's order:
	 * sorted(os.walk(...)) puts x, x/a, x/a-b, x/a/deep ('-' sorts before '/') */
	mkdirs("nested/train/x/a/deep");
	mkdirs("nested/train/x/a-b");
	mkdirs("nested/train/y/empty");
	ok = write_png(path_of("nested/train/x/m.png"), K_RGB8, 8, 8) == 0;
	ok &= write_png(path_of("nested/train/x/a/p.png"), K_GA8, 8, 8) == 0;
	ok &= write_png(path_of("nested/train/x/a-b/n.png"), K_GREY8, 8, 8) == 0;
	ok &= write_png(path_of("nested/train/x/a/deep/o.png"), K_PAL, 8, 8) == 0;
	ok &= write_png(path_of("nested/train/y/empty/only.png"), K_RGB16, 8, 8) == 0;
	rc = vt_data_load(&d, path_of("nested"), "train", 8, &err);
	CHECK(ok && rc == 0 && d.n == 5 && d.nclasses == 2, "nested class folders: 5 images in 2 classes (rc %d: %s)", rc,
	      rc ? err.msg : "");
	if (rc == 0) {
		static const enum kind want[] = { K_RGB8, K_GA8, K_GREY8, K_PAL, K_RGB16 };
		ok = 1;
		for (i = 0; i < 5; i++)
			ok &= image_is(d.pixels + i * 3 * 64, want[i], 8) && d.labels[i] == (i < 4 ? 0 : 1);
		CHECK(ok, "nested class folders: x, x/a, x/a-b, x/a/deep, then y/empty");
		vt_data_release(&d);
	}
	/* names only: class folders listed, no image read (corrupt/ holds a corrupt PNG) */
	rc = vt_data_load_names(&d, path_of("corrupt"), "train", &err);
	CHECK(rc == 0 && d.nclasses == 1 && strcmp(d.class_names[0], "x") == 0 && d.n == 0 && !d.pixels && !d.labels,
	      "names only from an image tree: its classes, no image decoded (rc %d: %s)", rc, rc ? err.msg : "");
	vt_data_release(&d);
	rc = vt_data_load_names(&d, "tests/fixtures/cifar-py/cifar-10-batches-py", "test", &err);
	CHECK(rc == 0 && d.nclasses == 10 && d.n == 0 && !d.pixels && !d.labels,
	      "names only from a CIFAR folder: 10 names, no images kept (rc %d: %s)", rc, rc ? err.msg : "");
	vt_data_release(&d);
	rc = vt_data_load_names(&d, path_of("nested"), "test", &err); /* nested/ has train/ only */
	CHECK(rc == VT_ENOTFOUND && !d.class_names && has(&err, "no CIFAR-10 or image folder found"),
	      "names only from a tree without the split: an error (%s)", err.msg);
	mkdirs("loop/train/x");
	write_png(path_of("loop/train/x/a.png"), K_RGB8, 8, 8);
	ok = symlink(".", path_of("loop/train/x/self")) == 0;
	check_fail(path_of("loop"), "train", VT_EUNSUPPORTED, "(a symlink loop?)", NULL, "a symlink loop in a class folder");
	CHECK(ok, "the symlink loop was made");
	mkdirs("emptycls/train/x");
	mkdirs("emptycls/train/y");
	write_png(path_of("emptycls/train/x/a.png"), K_RGB8, 8, 8);
	write_file(path_of("emptycls/train/y/readme.txt"), "x", 1);
	check_fail(path_of("emptycls"), "train", VT_ENOTFOUND, "train/y' holds no image (.png, .jpg, .jpeg)", NULL, "an empty class folder");
	mkdirs("noclass/test");
	check_fail(path_of("noclass"), "test", VT_ENOTFOUND, "no class folder in", NULL, "a split without classes");
	check_fail(path_of("emptycls"), "test", VT_ENOTFOUND, "no CIFAR-10 or image folder found", NULL,
		   "an image tree without the split");
	rc = vt_data_load(&d, path_of("emptycls"), "train", 0, &err);
	CHECK(rc == VT_EUSAGE, "image size 0 refused: %s", err.msg);
	/* 8x8 images resized to the size asked */
	{
		mkdirs("resize/train/x");
		write_png(path_of("resize/train/x/a.png"), K_RGB8, 8, 8);
		write_png(path_of("resize/train/x/b.png"), K_GREY8, 40, 20);
		rc = vt_data_load(&d, path_of("resize"), "train", 24, &err);
		CHECK(rc == 0 && d.n == 2 && d.h == 24 && d.w == 24 && d.nclasses == 1 && strcmp(d.class_names[0], "x") == 0,
		      "images of 8x8 and 40x20 resized to 24x24 (rc %d: %s)", rc, rc ? err.msg : "");
		vt_data_release(&d);
	}
}

/* ---- batches ------------------------------------------------------------------------------ */

/* The explicit version: pad with zeros, crop at (top, left) in the padded image, flip. */
static float reference(const struct vt_dataset *d, int i, int c, int y, int x, int top, int left, int flip)
{
	int py, px, h = d->h, w = d->w;
	unsigned v;

	if (flip)
		x = w - 1 - x;
	py = y + top;  /* in the padded image */
	px = x + left;
	if (py < 4 || py >= h + 4 || px < 4 || px >= w + 4)
		v = 0;
	else
		v = d->pixels[(size_t)i * 3 * (size_t)(h * w) + (size_t)(c * h * w + (py - 4) * w + (px - 4))];
	return (float)v / 255.0f;
}

static void test_batch(void)
{
	/* torchvision: ToTensor()+Normalize(CIFAR-10 constants) of pixels (0,1,128,255) in R,
	 * (7,64,200,255) in G, (3,99,180,254) in B, computed once with torchvision 0.14 */
	static const unsigned char px[3][4] = { { 0, 1, 128, 255 }, { 7, 64, 200, 255 }, { 3, 99, 180, 254 } };
	static const float cifar[3][4] = {
		{ -0x1.fd4e26p+0f, -0x1.f93da6p+0f, 0x1.5e428p-5f, 0x1.0790e6p+1f },
		{ -0x1.de17ecp+0f, -0x1.e62daap-1f, 0x1.3d9f68p+0f, 0x1.1030c8p+1f },
		{ -0x1.a96dd6p+0f, -0x1.c823bcp-3f, 0x1.fba8e2p-1f, 0x1.0ce82ap+1f },
	};
	static const float imagenet[3][4] = {
		{ -0x1.0f177ap+1f, -0x1.0ce656p+1f, 0x1.2f5e64p-4f, 0x1.1fdc3ap+1f },
		{ -0x1.e9c532p+0f, -0x1.d49dcp-1f, 0x1.773738p+0f, 0x1.36db6ep+1f },
		{ -0x1.c08d5ap+0f, -0x1.436572p-4f, 0x1.553314p+0f, 0x1.4fb068p+1f },
	};
	unsigned char pixels[2 * 3 * 4 * 8];
	int64_t labels[2] = { 0, 1 };
	struct vt_dataset d = { 2, 4, 8, pixels, labels, 2, NULL };
	struct vt_transform plain = { 0, NULL, NULL }, norm = { 0, vt_cifar10_mean, vt_cifar10_std },
			    inet = { 0, vt_imagenet_mean, vt_imagenet_std }, aug = { 1, NULL, NULL };
	float out[2 * 3 * 4 * 8];
	int idx[2] = { 1, 0 }, c, i, ok, k;
	struct vt_rng r, copy;
	int seen_off[9][9] = { { 0 } }, seen_flip[2] = { 0 };

	for (i = 0; i < (int)sizeof(pixels); i++)
		pixels[i] = (unsigned char)(i * 37 + 11);
	vt_data_batch(&d, idx, 2, &plain, NULL, out);
	ok = 1;
	for (i = 0; i < 2 * 96; i++)
		ok &= out[i] == (float)pixels[(i < 96 ? 96 : -96) + i] / 255.0f;
	CHECK(ok, "no augmentation, no normalisation: exactly pixel / 255, images in idx order");
	vt_data_batch(&d, idx, 1, NULL, NULL, out);
	CHECK(out[5] == (float)pixels[96 + 5] / 255.0f, "a NULL transform is ToTensor only");

	/* Normalize against torchvision's own numbers: a 1x4 image per channel */
	{
		unsigned char p4[12];
		float o4[12];
		struct vt_dataset d4 = { 1, 1, 4, p4, labels, 2, NULL };
		int zero = 0;
		for (c = 0; c < 3; c++)
			memcpy(p4 + c * 4, px[c], 4);
		vt_data_batch(&d4, &zero, 1, &norm, NULL, o4);
		ok = 1;
		for (c = 0; c < 3; c++)
			for (i = 0; i < 4; i++)
				ok &= o4[c * 4 + i] == cifar[c][i];
		CHECK(ok, "Normalize(CIFAR-10 mean/std) is bit-identical to torchvision (R0 %a, want %a)", o4[0], cifar[0][0]);
		vt_data_batch(&d4, &zero, 1, &inet, NULL, o4);
		ok = 1;
		for (c = 0; c < 3; c++)
			for (i = 0; i < 4; i++)
				ok &= o4[c * 4 + i] == imagenet[c][i];
		CHECK(ok, "Normalize(ImageNet mean/std) is bit-identical to torchvision");
	}

	/* augmentation: replay the draws (top, left in 0..8, then flip) against the reference */
	vt_rng_seed(&r, 42);
	ok = 1;
	for (k = 0; k < 400; k++) {
		int top, left, flip, y, x, b;
		copy = r;
		vt_data_batch(&d, idx, 2, &aug, &r, out);
		for (b = 0; b < 2; b++) {
			top = (int)(vt_rng_uniform(&copy) * 9);
			left = (int)(vt_rng_uniform(&copy) * 9);
			flip = vt_rng_uniform(&copy) < 0.5;
			seen_off[top][left]++;
			seen_flip[flip]++;
			for (c = 0; c < 3; c++)
				for (y = 0; y < 4; y++)
					for (x = 0; x < 8; x++)
						ok &= out[b * 96 + c * 32 + y * 8 + x] == reference(&d, idx[b], c, y, x, top, left, flip);
		}
	}
	CHECK(ok, "RandomCrop(padding=4) then RandomHorizontalFlip: as padding, cropping and mirroring by hand");
	ok = seen_flip[0] > 300 && seen_flip[1] > 300;
	for (i = 0; i < 81; i++)
		ok &= seen_off[i / 9][i % 9] > 0;
	CHECK(ok, "800 draws: all 81 crop offsets and both flips occur (flips %d/%d)", seen_flip[0], seen_flip[1]);

	/* a hand-made case: 1x2 image, values (255, 0): crop offset (4, 5) shifts left by one and
	 * pads the right with zero; the flip mirrors that */
	{
		unsigned char p2[6] = { 255, 0, 255, 0, 255, 0 };
		float o2[6];
		struct vt_dataset d2 = { 1, 1, 2, p2, labels, 2, NULL };
		int zero = 0, found = 0, s;
		for (s = 0; s < 1000 && found < 2; s++) {
			int top, left, flip;
			vt_rng_seed(&r, (uint64_t)s);
			copy = r;
			top = (int)(vt_rng_uniform(&copy) * 9);
			left = (int)(vt_rng_uniform(&copy) * 9);
			flip = vt_rng_uniform(&copy) < 0.5;
			if (top != 4 || left != 3)
				continue;
			vt_data_batch(&d2, &zero, 1, &aug, &r, o2);
			/* left 3: the window starts one pixel left of the image: (pad, 255) */
			if (!flip) {
				CHECK(o2[0] == 0.0f && o2[1] == 1.0f && o2[4] == 0.0f && o2[5] == 1.0f,
				      "crop window one pixel left of the image: (0, 1) in every channel (seed %d)", s);
			} else {
				CHECK(o2[0] == 1.0f && o2[1] == 0.0f, "the same, mirrored: (1, 0) (seed %d)", s);
			}
			found++;
		}
		CHECK(found > 0, "a seed with crop offset (4, 3) found");
	}
}

/* ---- the bundled sample ------------------------------------------------------------------- */

static void test_sample(void)
{
	struct vt_dataset d;
	struct vt_err err = { 0 };
	int rc, split, i;

	for (split = 0; split < 2; split++) {
		int per[10] = { 0 }, ok = 1, want = split ? 20 : 50;
		rc = vt_data_load(&d, "data", split ? "test" : "train", 32, &err);
		if (rc == 0)
			for (i = 0; i < d.n; i++)
				per[d.labels[i]]++;
		for (i = 0; i < 10; i++)
			ok &= per[i] == want;
		CHECK(rc == 0 && d.n == 10 * want && d.nclasses == 10 && d.h == 32 && strcmp(d.class_names[0], "airplane") == 0 &&
		      strcmp(d.class_names[9], "truck") == 0 && ok,
		      "data/ %s: %d images, %d per class, CIFAR-10's class names (rc %d: %s)", split ? "test" : "train",
		      10 * want, want, rc, rc ? err.msg : "");
		vt_data_release(&d);
	}
}

int main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/vt_data_XXXXXX");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	test_cifar_formats();
	test_archives();
	test_truncation();
	test_png();
	test_jpeg();
	test_image_archives();
	test_batch();
	test_sample();
	if (getenv("VT_TEST_KEEP"))
		printf("# files kept in %s\n", tmp);
	else
		rm_rf(tmp);
	return harness_done();
}
