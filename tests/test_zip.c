/* test_zip.c - the zip reader and writer (src/zip.c).
 *
 * Known answers from shared/research/pth-format.md section 1.7 (the offsets of torch 1.13's
 * 729-byte t.pth), round trips, hand-built archives for what the writer never emits
 * (deflate, zip64 directory fields, bad names), and every truncation and byte flip of a
 * written archive.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "vt_io.h"
#include "vt_zip.h"

static char tmpdir[256];

static uint16_t rd16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}


/* ---------------------------------------------------------------------------------------- */

static unsigned char pkl[154], stor[24];

struct wrec {
	const char *name;
	const unsigned char *data;
	size_t len;
};

/* Writes recs with vt_zipw_add into path; returns the file's bytes. */
static unsigned char *write_archive(const char *path, const char *prefix, const struct wrec *recs,
				    int n, size_t *len)
{
	struct vt_out out;
	struct vt_zipw w;
	struct vt_err err = { 0, "" };
	int i, rc;

	rc = vt_out_open(&out, path, &err);
	if (rc == 0)
		rc = vt_zipw_init(&w, &out, prefix, &err);
	for (i = 0; i < n && rc == 0; i++)
		rc = vt_zipw_add(&w, recs[i].name, recs[i].data, recs[i].len, &err);
	if (rc == 0)
		rc = vt_zipw_finish(&w, &err);
	vt_zipw_release(&w);
	if (rc == 0)
		rc = vt_out_commit(&out, &err);
	else
		vt_out_abort(&out);
	CHECK(rc == 0, "write %s: %s", path, rc ? err.msg : "ok");
	return rc == 0 ? harness_slurp(path, len) : NULL;
}

static void check_local(const unsigned char *f, size_t H, const char *name, size_t pad, int empty)
{
	size_t nlen = strlen(name);

	CHECK(rd32(f + H) == 0x04034b50, "local header '%s' at 0x%zx", name, H);
	CHECK(rd16(f + H + 4) == 0 && rd16(f + H + 8) == 0 && rd32(f + H + 10) == 0 &&
	      rd32(f + H + 14) == 0 && rd32(f + H + 18) == 0 && rd32(f + H + 22) == 0,
	      "'%s': version, method, time, date, crc and sizes are 0", name);
	CHECK(rd16(f + H + 6) == (empty ? 0x0800 : 0x0808), "'%s': flags 0x%04x", name, rd16(f + H + 6));
	CHECK(rd16(f + H + 26) == nlen && memcmp(f + H + 30, name, nlen) == 0, "'%s': name", name);
	CHECK(rd16(f + H + 28) == 4 + pad, "'%s': extra length %u, want %zu", name, rd16(f + H + 28),
	      4 + pad);
	CHECK(f[H + 30 + nlen] == 'F' && f[H + 31 + nlen] == 'B' && rd16(f + H + 32 + nlen) == pad,
	      "'%s': FB field with pad %zu", name, pad);
	{
		size_t i, zs = 0;
		for (i = 0; i < pad; i++)
			zs += f[H + 34 + nlen + i] == 'Z';
		CHECK(zs == pad, "'%s': %zu 'Z' bytes of padding", name, pad);
	}
}

static void check_desc(const unsigned char *f, size_t at, const unsigned char *data, size_t len)
{
	uint32_t crc = (uint32_t)crc32(0, data, (uInt)len);

	CHECK(rd32(f + at) == 0x08074b50 && rd32(f + at + 4) == crc && rd32(f + at + 8) == len &&
	      rd32(f + at + 12) == len, "descriptor at 0x%zx (crc 0x%08x, size %zu)", at, crc, len);
}

static void check_roundtrip(const unsigned char *f, size_t len, const char *prefix,
			    const struct wrec *recs, int n)
{
	struct vt_src src;
	struct vt_zip zip;
	struct vt_err err = { 0, "" };
	int i, rc;

	vt_src_mem(&src, f, len, "mem");
	rc = vt_zip_open(&zip, &src, &err);
	CHECK(rc == 0, "open: %s", rc ? err.msg : "ok");
	if (rc != 0)
		return;
	CHECK(zip.n == (uint64_t)n && strcmp(zip.prefix, prefix) == 0, "%llu entries, prefix '%s'",
	      (unsigned long long)zip.n, zip.prefix);
	for (i = 0; i < n; i++) {
		const struct vt_zip_entry *e = vt_zip_find(&zip, recs[i].name);
		unsigned char *buf = NULL;

		CHECK(e == &zip.entries[i], "find '%s' gives entry %d", recs[i].name, i);
		if (!e)
			continue;
		CHECK(e->size == recs[i].len && e->csize == recs[i].len && e->method == 0,
		      "'%s': size %llu", e->name, (unsigned long long)e->size);
		CHECK(e->data_offset % VT_ZIP_ALIGN == 0, "'%s': data at %llu is aligned", e->name,
		      (unsigned long long)e->data_offset);
		CHECK(e->crc == (uint32_t)crc32(0, recs[i].data, (uInt)recs[i].len), "'%s': crc 0x%08x",
		      e->name, e->crc);
		rc = vt_zip_read(&zip, e, 1 << 20, &buf, &err);
		CHECK(rc == 0 && memcmp(buf, recs[i].data, recs[i].len) == 0 && buf[recs[i].len] == 0,
		      "read '%s' gives the same bytes, NUL-terminated", e->name);
		free(buf);
		rc = vt_zip_verify(&zip, e, &err);
		CHECK(rc == 0, "verify '%s': %s", e->name, rc ? err.msg : "ok");
	}
	CHECK(vt_zip_find(&zip, "nope") == NULL && vt_zip_find(&zip, "data") == NULL,
	      "absent names are not found");
	vt_zip_release(&zip);
	vt_zip_release(&zip); /* released structs are zeroed: releasing twice is safe */
}

static size_t t_len;
static unsigned char *t_file;

static void test_layout(void)
{
	struct wrec recs[] = {
		{ "data.pkl", pkl, sizeof(pkl) },
		{ "data/0", stor, sizeof(stor) },
		{ "version", (const unsigned char *)"3\n", 2 },
	};
	char path[300];
	unsigned char *f;
	size_t len = 0, C = 0x1D2, Z = 0xA5, E64 = 0x277;

	snprintf(path, sizeof(path), "%s/t.pth", tmpdir);
	f = write_archive(path, "t", recs, 3, &len);
	if (!f)
		return;
	CHECK(len == 729, "t.pth is %zu bytes, torch 1.13 writes 729", len);
	if (len != 729) {
		free(f);
		return;
	}
	check_local(f, 0, "t/data.pkl", 20, 0);
	CHECK(memcmp(f + 64, pkl, sizeof(pkl)) == 0, "data.pkl data at 64");
	check_desc(f, 0xDA, pkl, sizeof(pkl));
	check_local(f, 0xEA, "t/data/0", 0x2c, 0);
	CHECK(memcmp(f + 0x140, stor, sizeof(stor)) == 0, "data/0 data at 0x140");
	check_desc(f, 0x158, stor, sizeof(stor));
	check_local(f, 0x168, "t/version", 0x2d, 0);
	CHECK(memcmp(f + 0x1C0, "3\n", 2) == 0, "version data at 0x1C0");
	check_desc(f, 0x1C2, (const unsigned char *)"3\n", 2);

	/* central directory */
	{
		static const size_t H[] = { 0, 0xEA, 0x168 };
		size_t at = C;
		int i;
		for (i = 0; i < 3; i++) {
			const unsigned char *p = f + at;
			size_t nlen = strlen(recs[i].name) + 2;
			CHECK(rd32(p) == 0x02014b50 && rd16(p + 4) == 0 && rd16(p + 6) == 0 &&
			      rd16(p + 8) == 0x0808 && rd16(p + 10) == 0 && rd32(p + 12) == 0,
			      "CD entry %d at 0x%zx: signature, versions, flags, method, time", i, at);
			CHECK(rd32(p + 16) == (uint32_t)crc32(0, recs[i].data, (uInt)recs[i].len) &&
			      rd32(p + 20) == recs[i].len && rd32(p + 24) == recs[i].len,
			      "CD entry %d: crc and sizes", i);
			CHECK(rd16(p + 28) == nlen && rd16(p + 30) == 0 && rd16(p + 32) == 0 &&
			      rd16(p + 34) == 0 && rd16(p + 36) == 0 && rd32(p + 38) == 0 &&
			      rd32(p + 42) == H[i], "CD entry %d: lengths, attributes, offset 0x%zx", i, H[i]);
			at += 46 + nlen;
		}
		CHECK(at == C + Z, "central directory is 0x%zx bytes", at - C);
	}
	CHECK(rd32(f + E64) == 0x06064b50 && rd64(f + E64 + 4) == 44 && rd16(f + E64 + 12) == 0x031E &&
	      rd16(f + E64 + 14) == 0x002D && rd32(f + E64 + 16) == 0 && rd32(f + E64 + 20) == 0 &&
	      rd64(f + E64 + 24) == 3 && rd64(f + E64 + 32) == 3 && rd64(f + E64 + 40) == Z &&
	      rd64(f + E64 + 48) == C, "zip64 end record at 0x277");
	CHECK(rd32(f + 0x2AF) == 0x07064b50 && rd32(f + 0x2B3) == 0 && rd64(f + 0x2B7) == E64 &&
	      rd32(f + 0x2BF) == 1, "zip64 locator at 0x2AF");
	CHECK(rd32(f + 0x2C3) == 0x06054b50 && rd16(f + 0x2C7) == 0 && rd16(f + 0x2C9) == 0 &&
	      rd16(f + 0x2CB) == 3 && rd16(f + 0x2CD) == 3 && rd32(f + 0x2CF) == Z &&
	      rd32(f + 0x2D3) == C && rd16(f + 0x2D7) == 0, "end record at 0x2C3");

	check_roundtrip(f, len, "t", recs, 3);

	/* the same archive read from the file (pread path) */
	{
		struct vt_src src;
		struct vt_zip zip;
		struct vt_err err = { 0, "" };
		int rc = vt_src_open(&src, path, &err);
		if (rc == 0)
			rc = vt_zip_open(&zip, &src, &err);
		CHECK(rc == 0 && zip.n == 3 && zip.entries[1].data_offset == 0x140 &&
		      zip.entries[2].data_offset == 0x1C0 && vt_zip_verify(&zip, &zip.entries[0], &err) == 0,
		      "open and verify from the file: %s", rc ? err.msg : "ok");
		if (rc == 0)
			vt_zip_release(&zip);
		vt_src_close(&src);
		CHECK(vt_zip_detect(&src) == 0, "detect on a closed source is 0");
		vt_src_mem(&src, f, len, "mem");
		CHECK(vt_zip_detect(&src) == 1, "detect finds PK\\3\\4");
		vt_src_mem(&src, "PK\3", 3, "mem");
		CHECK(vt_zip_detect(&src) == 0, "detect on 3 bytes is 0");
	}
	t_file = f;
	t_len = len;
}

/* Records written with vt_zipw_data in pieces and vt_zipw_copy (known and unknown CRC, from
 * memory and from a file) give the same bytes as vt_zipw_add. */
static void test_copy(void)
{
	char path[300], src_path[300];
	struct vt_out out;
	struct vt_zipw w;
	struct vt_src fsrc, msrc;
	struct vt_err err = { 0, "" };
	uint32_t crc_pkl = (uint32_t)crc32(0, pkl + 10, 100);
	unsigned char *f;
	size_t len = 0;
	int rc;

	if (!t_file)
		return;
	snprintf(src_path, sizeof(src_path), "%s/src.bin", tmpdir);
	{
		FILE *s = fopen(src_path, "wb");
		fwrite(pkl, 1, sizeof(pkl), s);
		fwrite(stor, 1, sizeof(stor), s);
		fclose(s);
	}
	snprintf(path, sizeof(path), "%s/copy.pth", tmpdir);
	rc = vt_src_open(&fsrc, src_path, &err);
	vt_src_mem(&msrc, pkl, sizeof(pkl), "mem");
	if (rc == 0)
		rc = vt_out_open(&out, path, &err);
	if (rc == 0)
		rc = vt_zipw_init(&w, &out, "t", &err);
	if (rc == 0)
		rc = vt_zipw_begin(&w, "data.pkl", sizeof(pkl), &err);
	if (rc == 0)
		rc = vt_zipw_data(&w, pkl, 10, &err);
	if (rc == 0)
		rc = vt_zipw_copy(&w, &fsrc, 10, 100, &crc_pkl, &err);      /* kernel copy */
	if (rc == 0)
		rc = vt_zipw_copy(&w, &msrc, 110, 20, NULL, &err);           /* CRC computed */
	if (rc == 0) {
		CHECK(vt_zipw_end(&w, &err) == VT_EUSAGE, "end after 130 of 154 bytes: %s", err.msg);
		CHECK(vt_zipw_begin(&w, "x", 1, &err) == VT_EUSAGE, "begin while a record is open: %s",
		      err.msg);
		CHECK(vt_zipw_finish(&w, &err) == VT_EUSAGE, "finish while a record is open: %s",
		      err.msg);
		CHECK(vt_zipw_data(&w, pkl, 25, &err) == VT_EUSAGE, "25 more bytes than room for 24: %s",
		      err.msg);
		rc = vt_zipw_copy(&w, &fsrc, 130, 24, NULL, &err);
	}
	if (rc == 0)
		rc = vt_zipw_end(&w, &err);
	if (rc == 0) {
		CHECK(vt_zipw_data(&w, pkl, 1, &err) == VT_EUSAGE, "data with no open record: %s", err.msg);
		rc = vt_zipw_begin(&w, "data/0", sizeof(stor), &err);
	}
	if (rc == 0)
		rc = vt_zipw_copy(&w, &fsrc, sizeof(pkl), sizeof(stor), NULL, &err);
	if (rc == 0)
		rc = vt_zipw_end(&w, &err);
	if (rc == 0)
		rc = vt_zipw_add(&w, "version", "3\n", 2, &err);
	if (rc == 0)
		rc = vt_zipw_finish(&w, &err);
	vt_zipw_release(&w);
	vt_src_close(&fsrc);
	if (rc == 0)
		rc = vt_out_commit(&out, &err);
	else
		vt_out_abort(&out);
	CHECK(rc == 0, "write with data and copy: %s", rc ? err.msg : "ok");
	f = rc == 0 ? harness_slurp(path, &len) : NULL;
	CHECK(f && len == t_len && memcmp(f, t_file, len) == 0, "identical to the vt_zipw_add archive");
	free(f);

	{
		struct vt_zipw w2;
		CHECK(vt_zipw_init(&w2, &out, "a/b", &err) == VT_EUSAGE, "prefix with '/': %s", err.msg);
		vt_zipw_release(&w2);
		CHECK(vt_zipw_init(&w2, &out, "", &err) == VT_EUSAGE, "empty prefix: %s", err.msg);
		vt_zipw_release(&w2);
	}
}

static void test_empty(void)
{
	struct wrec recs[] = {
		{ "data/0", (const unsigned char *)"", 0 },
		{ "version", (const unsigned char *)"3\n", 2 },
	};
	char path[300];
	unsigned char *f;
	size_t len = 0, C;

	snprintf(path, sizeof(path), "%s/e.pth", tmpdir);
	f = write_archive(path, "e", recs, 2, &len);
	if (!f)
		return;
	/* "e/data/0": 30 + 8 + 4 = 42, pad 22, data at 64 and no descriptor after it */
	check_local(f, 0, "e/data/0", 22, 1);
	check_local(f, 64, "e/version", 21, 0);
	check_desc(f, 128 + 2, (const unsigned char *)"3\n", 2);
	C = 128 + 2 + 16;
	CHECK(rd32(f + C) == 0x02014b50 && rd16(f + C + 8) == 0x0800 && rd32(f + C + 16) == 0 &&
	      rd32(f + C + 20) == 0 && rd32(f + C + 42) == 0, "empty record's CD entry: flags 0x0800");
	CHECK(rd16(f + C + 46 + 8 + 8) == 0x0808 && rd32(f + C + 46 + 8 + 42) == 64,
	      "next CD entry: flags 0x0808, header at 64");
	CHECK(len == C + 2 * 46 + 8 + 9 + 56 + 20 + 22, "size %zu", len);
	check_roundtrip(f, len, "e", recs, 2);
	free(f);
}

/* Opens a private copy of exactly len bytes (so ASan sees any over-read); on success reads
 * and verifies every record. Returns vt_zip_open's code. */
static int open_all(const unsigned char *data, size_t len, char *msg, size_t msglen)
{
	unsigned char *copy = malloc(len ? len : 1);
	struct vt_src src;
	struct vt_zip zip;
	struct vt_err err = { 0, "" };
	uint64_t i;
	int rc;

	memcpy(copy, data, len);
	vt_src_mem(&src, copy, len, "mem");
	rc = vt_zip_open(&zip, &src, &err);
	if (rc == 0) {
		for (i = 0; i < zip.n; i++) {
			unsigned char *buf = NULL;
			if (vt_zip_read(&zip, &zip.entries[i], 1 << 20, &buf, &err) == 0)
				free(buf);
			vt_zip_verify(&zip, &zip.entries[i], &err);
		}
		vt_zip_release(&zip);
	}
	if (msg)
		snprintf(msg, msglen, "%s", rc ? err.msg : "ok");
	free(copy);
	return rc;
}

static void truncation_sweep(const char *what, const unsigned char *f, size_t len)
{
	size_t n, failed = 0;
	char msg[512] = "";

	for (n = 0; n < len; n++)
		failed += open_all(f, n, n == len / 2 ? msg : NULL, sizeof(msg)) != 0;
	CHECK(failed == len, "%s: all %zu truncations refused (e.g. '%s')", what, len, msg);
	CHECK(open_all(f, len, NULL, 0) == 0, "%s: the whole file opens", what);
}

static void flip_sweep(const char *what, const unsigned char *f, size_t len, size_t from)
{
	unsigned char *g = malloc(len);
	size_t i, bad = 0, total = 0;

	for (i = from; i < len; i++) {
		memcpy(g, f, len);
		g[i] ^= 0xFF;
		bad += open_all(g, len, NULL, 0) != 0;
		total++;
	}
	CHECK(bad > 0 && bad <= total, "%s: %zu of %zu byte flips from offset %zu refused, none crashed",
	      what, bad, total, from);
	free(g);
}

static void test_corruption(void)
{
	unsigned char *g;
	char msg[512] = "";
	int rc;

	if (!t_file)
		return;
	truncation_sweep("t.pth", t_file, t_len);
	flip_sweep("t.pth", t_file, t_len, 0);
	flip_sweep("t.pth end records", t_file, t_len, 0x1D2);

	g = malloc(t_len);
	memcpy(g, t_file, t_len);
	g[0x1D2] ^= 0xFF;
	CHECK(open_all(g, t_len, msg, sizeof(msg)) == VT_EFORMAT && strstr(msg, "offset 466"),
	      "bad CD signature names its offset: %s", msg);

	/* CRC mismatch after flipping a data byte */
	memcpy(g, t_file, t_len);
	g[64 + 5] ^= 0x01;
	{
		struct vt_src src;
		struct vt_zip zip;
		struct vt_err err = { 0, "" };
		vt_src_mem(&src, g, t_len, "mem");
		rc = vt_zip_open(&zip, &src, &err);
		CHECK(rc == 0, "open with a flipped data byte: %s", rc ? err.msg : "ok");
		if (rc == 0) {
			rc = vt_zip_verify(&zip, &zip.entries[0], &err);
			CHECK(rc == VT_EFORMAT && strstr(err.msg, "zip: record 't/data.pkl': CRC-32 mismatch (directory 0x"),
			      "verify: %s", err.msg);
			CHECK(vt_zip_verify(&zip, &zip.entries[1], &err) == 0, "other records still verify");
			{
				unsigned char *buf = NULL;
				rc = vt_zip_read(&zip, &zip.entries[0], 153, &buf, &err);
				CHECK(rc == VT_ENOMEM && buf == NULL && strstr(err.msg, "154"),
				      "read with max 153 refuses 154 bytes: %s", err.msg);
			}
			vt_zip_release(&zip);
		}
	}

	/* a comment after the end record is fine; trailing junk that leaves it short is not */
	{
		unsigned char *h = malloc(t_len + 5);
		memcpy(h, t_file, t_len);
		memcpy(h + t_len, "hello", 5);
		h[t_len - 2] = 5;
		CHECK(open_all(h, t_len + 5, msg, sizeof(msg)) == 0, "5-byte comment: %s", msg);
		h[t_len - 2] = 6;
		CHECK(open_all(h, t_len + 5, msg, sizeof(msg)) != 0, "comment longer than the file: %s", msg);
		free(h);
	}
	free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* Hand-built archives, as Python's zipfile writes them (no descriptors, no padding) */

struct hrec {
	const char *name;
	const unsigned char *data;
	size_t len;
	int deflate;
	int z64;          /* CD fields set to 0xFFFFFFFF with a zip64 extra: 1 usize, 2 csize, 4 offset */
	int64_t size_adj; /* added to the directory's uncompressed size */
	int same_header;  /* point this CD entry at the previous record's local header */
};

struct hbuf {
	unsigned char b[1 << 16];
	size_t n;
};

static void p16(struct hbuf *h, unsigned v)
{
	h->b[h->n++] = (unsigned char)v;
	h->b[h->n++] = (unsigned char)(v >> 8);
}

static void p32(struct hbuf *h, uint32_t v)
{
	p16(h, v & 0xFFFF);
	p16(h, v >> 16);
}

static void p64(struct hbuf *h, uint64_t v)
{
	p32(h, (uint32_t)v);
	p32(h, (uint32_t)(v >> 32));
}

static void pbytes(struct hbuf *h, const void *p, size_t n)
{
	memcpy(h->b + h->n, p, n);
	h->n += n;
}

static size_t deflate_raw(const unsigned char *in, size_t n, unsigned char *out, size_t cap)
{
	z_stream zs;

	memset(&zs, 0, sizeof(zs));
	deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	zs.next_in = (unsigned char *)in;
	zs.avail_in = (uInt)n;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	deflate(&zs, Z_FINISH);
	deflateEnd(&zs);
	return cap - zs.avail_out;
}

/* Builds an archive of n records; zip64_end adds the zip64 end record and locator and sets
 * the 32-bit end fields to all ones. */
static void build(struct hbuf *h, const struct hrec *r, int n, int zip64_end)
{
	static unsigned char comp[8][8192];
	size_t clen[8], hoff[8], cd, cdsize, e64;
	int i;

	h->n = 0;
	for (i = 0; i < n; i++) {
		uint32_t crc = (uint32_t)crc32(0, r[i].data, (uInt)r[i].len);
		clen[i] = r[i].deflate ? deflate_raw(r[i].data, r[i].len, comp[i], sizeof(comp[i])) : r[i].len;
		if (!r[i].deflate)
			memcpy(comp[i], r[i].data, r[i].len);
		if (r[i].same_header) {
			hoff[i] = hoff[i - 1];
			continue;
		}
		hoff[i] = h->n;
		p32(h, 0x04034b50);
		p16(h, r[i].deflate ? 20 : 10);
		p16(h, 0);
		p16(h, r[i].deflate ? 8 : 0);
		p32(h, 0x21);       /* time, date */
		p32(h, crc);
		p32(h, (uint32_t)clen[i]);
		p32(h, (uint32_t)r[i].len);
		p16(h, (unsigned)strlen(r[i].name));
		p16(h, 0);
		pbytes(h, r[i].name, strlen(r[i].name));
		pbytes(h, comp[i], clen[i]);
	}
	cd = h->n;
	for (i = 0; i < n; i++) {
		int z = r[i].z64;
		uint64_t usize = (uint64_t)((int64_t)r[i].len + r[i].size_adj);
		unsigned xlen = (z & 1 ? 8 : 0) + (z & 2 ? 8 : 0) + (z & 4 ? 8 : 0);

		p32(h, 0x02014b50);
		p16(h, 20);
		p16(h, r[i].deflate ? 20 : 10);
		p16(h, 0);
		p16(h, r[i].deflate ? 8 : 0);
		p32(h, 0x21);
		p32(h, (uint32_t)crc32(0, r[i].data, (uInt)r[i].len));
		p32(h, z & 2 ? 0xFFFFFFFF : (uint32_t)clen[i]);
		p32(h, z & 1 ? 0xFFFFFFFF : (uint32_t)usize);
		p16(h, (unsigned)strlen(r[i].name));
		p16(h, xlen ? 4 + xlen : 0);
		p16(h, 0);
		p16(h, 0);
		p16(h, 0);
		p32(h, 0);
		p32(h, z & 4 ? 0xFFFFFFFF : (uint32_t)hoff[i]);
		pbytes(h, r[i].name, strlen(r[i].name));
		if (xlen) {
			/* an unrelated field first, as Info-ZIP would put a timestamp */
			p16(h, 0x0001);
			p16(h, xlen);
			if (z & 1)
				p64(h, usize);
			if (z & 2)
				p64(h, clen[i]);
			if (z & 4)
				p64(h, hoff[i]);
		}
	}
	cdsize = h->n - cd;
	e64 = h->n;
	if (zip64_end) {
		p32(h, 0x06064b50);
		p64(h, 44);
		p16(h, 45);
		p16(h, 45);
		p32(h, 0);
		p32(h, 0);
		p64(h, (uint64_t)n);
		p64(h, (uint64_t)n);
		p64(h, cdsize);
		p64(h, cd);
		p32(h, 0x07064b50);
		p32(h, 0);
		p64(h, e64);
		p32(h, 1);
	}
	p32(h, 0x06054b50);
	p16(h, 0);
	p16(h, 0);
	p16(h, zip64_end ? 0xFFFF : (unsigned)n);
	p16(h, zip64_end ? 0xFFFF : (unsigned)n);
	p32(h, zip64_end ? 0xFFFFFFFF : (uint32_t)cdsize);
	p32(h, zip64_end ? 0xFFFFFFFF : (uint32_t)cd);
	p16(h, 0);
}

static unsigned char text[5000];

/* Opens h, expecting rc; on success checks every record's bytes. Returns the message. */
static const char *expect(const char *what, const struct hbuf *h, const struct hrec *r, int n,
			  int want)
{
	static struct vt_err err;
	struct vt_src src;
	struct vt_zip zip;
	int rc, i;

	err.msg[0] = '\0';
	vt_src_mem(&src, h->b, h->n, "mem");
	rc = vt_zip_open(&zip, &src, &err);
	CHECK(rc == want, "%s: open gives %d, want %d (%s)", what, rc, want, rc ? err.msg : "ok");
	if (rc != 0)
		return err.msg;
	for (i = 0; i < n; i++) {
		const struct vt_zip_entry *e = &zip.entries[i];
		unsigned char *buf = NULL;
		CHECK(strcmp(e->name, r[i].name) == 0 && e->size == r[i].len &&
		      e->method == (r[i].deflate ? 8 : 0), "%s: entry %d is '%s', %llu bytes, method %u",
		      what, i, e->name, (unsigned long long)e->size, e->method);
		rc = vt_zip_read(&zip, e, 1 << 20, &buf, &err);
		CHECK(rc == 0 && memcmp(buf, r[i].data, r[i].len) == 0 && buf[r[i].len] == 0,
		      "%s: '%s' reads back (%s)", what, e->name, rc ? err.msg : "ok");
		free(buf);
		rc = vt_zip_verify(&zip, e, &err);
		CHECK(rc == 0, "%s: '%s' verifies (%s)", what, e->name, rc ? err.msg : "ok");
	}
	vt_zip_release(&zip);
	return "";
}

static void test_deflate(void)
{
	static struct hbuf h;
	struct hrec r[] = {
		{ "archive/data.pkl", text, sizeof(text), 1, 0, 0, 0 },
		{ "archive/version", (const unsigned char *)"3\n", 2, 0, 0, 0, 0 },
	};
	struct vt_src src;
	struct vt_zip zip;
	struct vt_err err = { 0, "" };
	unsigned char *buf = NULL;
	int rc;

	build(&h, r, 2, 0);
	expect("deflate", &h, r, 2, 0);
	vt_src_mem(&src, h.b, h.n, "mem");
	rc = vt_zip_open(&zip, &src, &err);
	if (rc == 0) {
		CHECK(zip.entries[0].csize < sizeof(text) / 4, "deflated to %llu bytes",
		      (unsigned long long)zip.entries[0].csize);
		CHECK(vt_zip_find(&zip, "data.pkl") == &zip.entries[0] && strcmp(zip.prefix, "archive") == 0,
		      "found in prefix 'archive'");
		vt_zip_release(&zip);
	}
	truncation_sweep("deflate", h.b, h.n);
	flip_sweep("deflate", h.b, h.n, 0);

	/* the directory's size must be exactly what the data inflates to */
	r[0].size_adj = -1;
	build(&h, r, 2, 0);
	vt_src_mem(&src, h.b, h.n, "mem");
	rc = vt_zip_open(&zip, &src, &err);
	CHECK(rc == 0, "open with a short size");
	if (rc == 0) {
		rc = vt_zip_read(&zip, &zip.entries[0], 1 << 20, &buf, &err);
		CHECK(rc == VT_EFORMAT && !buf && strstr(err.msg, "inflates to more than its 4999 bytes"),
		      "inflating past the size is refused: %s", err.msg);
		rc = vt_zip_verify(&zip, &zip.entries[0], &err);
		CHECK(rc == VT_EFORMAT, "verify too: %s", err.msg);
		vt_zip_release(&zip);
	}
	r[0].size_adj = 1;
	build(&h, r, 2, 0);
	vt_src_mem(&src, h.b, h.n, "mem");
	rc = vt_zip_open(&zip, &src, &err);
	if (rc == 0) {
		rc = vt_zip_read(&zip, &zip.entries[0], 1 << 20, &buf, &err);
		CHECK(rc == VT_EFORMAT && !buf && strstr(err.msg, "inflates to 5000 bytes, the directory says 5001"),
		      "inflating short of the size is refused: %s", err.msg);
		vt_zip_release(&zip);
	}
}

static void test_names(void)
{
	static struct hbuf h;
	const unsigned char *v = (const unsigned char *)"3\n";
	const char *msg;
	struct hrec r[3] = {
		{ "archive/data.pkl", pkl, sizeof(pkl), 0, 0, 0, 0 },
		{ "other/version", v, 2, 0, 0, 0, 0 },
		{ "archive/", v, 0, 0, 0, 0, 0 },
	};

	build(&h, r, 2, 0);
	msg = expect("later entry in another folder", &h, r, 2, VT_EFORMAT);
	CHECK(strstr(msg, "file in archive is not in a subdirectory") != NULL, "message: %s", msg);

	r[0].name = "data.pkl";
	r[1].name = "archive/version";
	build(&h, r, 2, 0);
	msg = expect("first entry with no folder", &h, r, 2, VT_EFORMAT);
	CHECK(strstr(msg, "not in a subdirectory") != NULL, "message: %s", msg);

	r[0].name = "archive/../x";
	build(&h, r, 2, 0);
	msg = expect("'..' component", &h, r, 2, VT_EFORMAT);
	CHECK(strstr(msg, "central directory entry 0 at offset") != NULL, "message: %s", msg);

	r[0].name = "/archive/x";
	build(&h, r, 2, 0);
	expect("leading '/'", &h, r, 2, VT_EFORMAT);

	r[0].name = "archive/..";
	build(&h, r, 2, 0);
	expect("trailing '..'", &h, r, 2, VT_EFORMAT);

	r[0].name = "archive/a..b/..c";
	build(&h, r, 2, 0);
	expect("names with dots are fine", &h, r, 2, 0);

	r[0].name = "archive/data.pkl";
	r[1].name = "archive/data.pkl";
	build(&h, r, 2, 0);
	msg = expect("duplicate name", &h, r, 2, VT_EFORMAT);
	CHECK(strstr(msg, "twice") != NULL, "message: %s", msg);

	/* two directory entries sharing one local header: overlapping records */
	r[1].name = "archive/data.pkl";
	r[1].data = pkl;
	r[1].len = sizeof(pkl);
	r[1].same_header = 1;
	build(&h, r, 2, 0);
	msg = expect("two entries, one local header", &h, r, 2, VT_EFORMAT);
	CHECK(strstr(msg, "overlaps") != NULL, "message: %s", msg);

	r[1].name = "archive/version";
	r[1].data = v;
	r[1].len = 2;
	r[1].same_header = 0;
	build(&h, r, 3, 0);
	expect("directory entry 'archive/'", &h, r, 3, 0);

	/* unsupported method */
	build(&h, r, 2, 0);
	h.b[h.n - 22 - 2 * 46 - strlen(r[0].name) - strlen(r[1].name) + 10] = 12; /* bzip2 */
	msg = expect("method 12", &h, r, 2, VT_EUNSUPPORTED);
	CHECK(strstr(msg, "method 12") != NULL, "message: %s", msg);
	/* encryption flag */
	build(&h, r, 2, 0);
	h.b[h.n - 22 - 2 * 46 - strlen(r[0].name) - strlen(r[1].name) + 8] = 1;
	msg = expect("encrypted", &h, r, 2, VT_EUNSUPPORTED);
	CHECK(strstr(msg, "encrypted") != NULL, "message: %s", msg);
	/* multi-disk */
	build(&h, r, 2, 0);
	h.b[h.n - 22 + 4] = 1;
	expect("disk 1", &h, r, 2, VT_EUNSUPPORTED);
	/* an empty archive */
	build(&h, r, 0, 0);
	expect("no entries", &h, r, 0, VT_EFORMAT);
}

static void test_zip64(void)
{
	static struct hbuf h;
	struct hrec r[] = {
		{ "archive/data.pkl", pkl, sizeof(pkl), 0, 1 | 2 | 4, 0, 0 },
		{ "archive/data/0", text, sizeof(text), 1, 4, 0, 0 },
		{ "archive/version", (const unsigned char *)"3\n", 2, 0, 2, 0, 0 },
	};

	build(&h, r, 3, 1);
	expect("zip64 directory fields and end record", &h, r, 3, 0);
	truncation_sweep("zip64", h.b, h.n);
	flip_sweep("zip64", h.b, h.n, 0);

	build(&h, r, 3, 0);
	expect("zip64 directory fields, plain end record", &h, r, 3, 0);

	/* the zip64 field must hold a value for every all-ones field */
	build(&h, r, 1, 0);
	h.b[h.n - 22 - 24 - 4 + 2] = 16; /* field length 24 -> 16, rest is an unknown field */
	h.b[h.n - 22 - 8] = 0x99;
	h.b[h.n - 22 - 7] = 0x99;
	h.b[h.n - 22 - 6] = 4;
	h.b[h.n - 22 - 5] = 0;
	{
		const char *msg = expect("zip64 field too short", &h, r, 1, VT_EFORMAT);
		CHECK(strstr(msg, "too short") != NULL, "message: %s", msg);
	}
}

int main(void)
{
	size_t i;

	snprintf(tmpdir, sizeof(tmpdir), "%s/vt_test_zip.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	for (i = 0; i < sizeof(pkl); i++)
		pkl[i] = (unsigned char)(i * 37 + 11);
	for (i = 0; i < sizeof(stor); i++)
		stor[i] = (unsigned char)(255 - i * 5);
	for (i = 0; i < sizeof(text); i++)
		text[i] = "hello, zip world\n"[i % 17] ^ (unsigned char)(i / 1000);

	test_layout();
	test_copy();
	test_empty();
	test_corruption();
	test_deflate();
	test_names();
	test_zip64();

	free(t_file);
	{
		char p[300];
		snprintf(p, sizeof(p), "%s/t.pth", tmpdir);
		unlink(p);
		snprintf(p, sizeof(p), "%s/e.pth", tmpdir);
		unlink(p);
		snprintf(p, sizeof(p), "%s/copy.pth", tmpdir);
		unlink(p);
		snprintf(p, sizeof(p), "%s/src.bin", tmpdir);
		unlink(p);
		rmdir(tmpdir);
	}
	return harness_done();
}
