/* zip.c - the zip container of torch.save files (see include/vt_zip.h).
 *
 * Format: PKWARE APPNOTE 6.3 as written by PyTorch's patched miniz and read by
 * PyTorchStreamReader; the exact bytes are in shared/research/pth-format.md section 1.
 *
 * Reader: finds the end record by scanning back over at most a 65535-byte comment, prefers
 * the zip64 end record when there is one, and takes names, sizes, CRCs and offsets from the
 * central directory (PyTorch's local headers carry zeros).  Each local header is read only
 * for its name and extra lengths, which place the data.  Supported: stored and deflated
 * records, zip64, comments, directory entries.  Refused: encryption, multi-disk archives,
 * other methods, more than VT_ZIP_MAX_ENTRIES entries, names over 4096 bytes or holding NUL,
 * ".." components or a leading '/', duplicate names, records that overlap each other or the
 * central directory, and entries outside the archive folder (the text before the first '/'
 * of the first entry, as PyTorchStreamReader decides).  Every offset and size is checked
 * against the file size before it is used to allocate or read.  Deflated data must inflate
 * to exactly the directory's size, which bounds zip bombs.
 *
 * Writer: stored records only, in PyTorch 1.13's layout byte for byte: local header with
 * flags 0x0808 (0x0800 for empty records) and zero CRC/sizes, a zip64 field when the size or
 * the header offset reaches 0xFFFFFFFF, an "FB" field padding the data to VT_ZIP_ALIGN, a data
 * descriptor after non-empty data, then the central directory and always the zip64 end
 * record, zip64 locator and end record.  No timestamps, no comments.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "vt_zip.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define ZIP_MAX_NAME 4096
#define ZIP_MAX_COMMENT 65535
#define ZIP_CHUNK (1u << 20)
#define U32_MAX_ 0xFFFFFFFFu

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_DESC 0x08074b50u
#define SIG_Z64_END 0x06064b50u
#define SIG_Z64_LOC 0x07064b50u
#define SIG_END 0x06054b50u

#define LOCAL_SIZE 30
#define CENTRAL_SIZE 46
#define END_SIZE 22
#define Z64_LOC_SIZE 20
#define Z64_END_SIZE 56

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static unsigned char *put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	return p + 2;
}

static unsigned char *put32(unsigned char *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
	return p + 4;
}

static unsigned char *put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
	return p + 8;
}

static uint32_t clamp32(uint64_t v)
{
	return v >= U32_MAX_ ? U32_MAX_ : (uint32_t)v;
}

static unsigned long long ull(uint64_t v)
{
	return (unsigned long long)v;
}

/* ---------------------------------------------------------------------------------------- */
/* Reader */

int vt_zip_detect(const struct vt_src *src)
{
	unsigned char b[4];

	if (vt_src_read(src, 0, b, 4, NULL) != 0)
		return 0;
	return get32(b) == SIG_LOCAL;
}

/*
 * Behind the n entries, the same allocation holds n pointers to them sorted by name, so that
 * vt_zip_find is a binary search even with VT_ZIP_MAX_ENTRIES records.  (The public struct
 * has no field for it; vt_zip_release frees both with entries.)
 */
static struct vt_zip_entry **by_name(const struct vt_zip *zip)
{
	return (struct vt_zip_entry **)(void *)(zip->entries + zip->n);
}

static int cmp_offset(const void *a, const void *b)
{
	const struct vt_zip_entry *x = *(struct vt_zip_entry *const *)a;
	const struct vt_zip_entry *y = *(struct vt_zip_entry *const *)b;

	return x->header_offset < y->header_offset ? -1 : x->header_offset > y->header_offset;
}

static int cmp_name(const void *a, const void *b)
{
	const struct vt_zip_entry *x = *(struct vt_zip_entry *const *)a;
	const struct vt_zip_entry *y = *(struct vt_zip_entry *const *)b;

	return strcmp(x->name, y->name);
}

/* The end of central directory record, or the zip64 one when there is a locator. */
struct zip_end {
	uint64_t n, cd_off, cd_size;
	uint64_t end_start; /* where the end records begin: the CD must end before it */
};

/*
 * End of central directory record (22 bytes + comment):
 *   u32 50 4B 05 06, u16 disk, u16 cd disk, u16 entries here, u16 entries,
 *   u32 cd size, u32 cd offset, u16 comment length, comment
 * zip64 locator (20 bytes, right before it):
 *   u32 50 4B 06 07, u32 disk of the zip64 end, u64 its offset, u32 disk count
 * zip64 end of central directory (56 bytes + extensible data):
 *   u32 50 4B 06 06, u64 size of the rest, u16 made by, u16 needed, u32 disk, u32 cd disk,
 *   u64 entries here, u64 entries, u64 cd size, u64 cd offset
 */
static int find_end(const struct vt_src *src, struct zip_end *end, struct vt_err *err)
{
	uint64_t tail_len, tail_off, pos = 0;
	unsigned char *tail, e[END_SIZE], loc[Z64_LOC_SIZE], z[Z64_END_SIZE];
	uint32_t disk, cd_disk;
	uint64_t n_here;
	size_t i, fallback = SIZE_MAX, found = SIZE_MAX;
	int rc;

	if (src->size < END_SIZE)
		return vt_err_set(err, VT_EFORMAT, "zip: no end of central directory record (file is %llu bytes)",
				  ull(src->size));
	tail_len = src->size < END_SIZE + ZIP_MAX_COMMENT ? src->size : END_SIZE + ZIP_MAX_COMMENT;
	tail_off = src->size - tail_len;
	tail = malloc((size_t)tail_len);
	if (!tail)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	rc = vt_src_read(src, tail_off, tail, (size_t)tail_len, err);
	if (rc != 0) {
		free(tail);
		return rc;
	}
	/* The last signature whose comment ends exactly at the end of the file; failing that,
	 * the last one whose comment fits (trailing bytes after the archive). */
	for (i = (size_t)tail_len - END_SIZE + 1; i-- > 0;) {
		if (get32(tail + i) != SIG_END)
			continue;
		if (i + END_SIZE + get16(tail + i + 20) == tail_len) {
			found = i;
			break;
		}
		if (fallback == SIZE_MAX && i + END_SIZE + get16(tail + i + 20) <= tail_len)
			fallback = i;
	}
	if (found == SIZE_MAX)
		found = fallback;
	if (found != SIZE_MAX) {
		memcpy(e, tail + found, END_SIZE);
		pos = tail_off + found;
	}
	free(tail);
	if (found == SIZE_MAX)
		return vt_err_set(err, VT_EFORMAT, "zip: no end of central directory record in the last %llu bytes",
				  ull(tail_len));

	disk = get16(e + 4);
	cd_disk = get16(e + 6);
	n_here = get16(e + 8);
	end->n = get16(e + 10);
	end->cd_size = get32(e + 12);
	end->cd_off = get32(e + 16);
	end->end_start = pos;

	memset(loc, 0, sizeof(loc));
	if (pos >= Z64_LOC_SIZE) {
		rc = vt_src_read(src, pos - Z64_LOC_SIZE, loc, Z64_LOC_SIZE, err);
		if (rc != 0)
			return rc;
	}
	if (get32(loc) == SIG_Z64_LOC) {
		uint64_t zoff = get64(loc + 8), loc_pos = pos - Z64_LOC_SIZE;

		if (get32(loc + 4) != 0 || get32(loc + 16) > 1)
			return vt_err_set(err, VT_EUNSUPPORTED,
					  "zip: zip64 locator at offset %llu: multi-disk archives are not supported",
					  ull(loc_pos));
		if (zoff > loc_pos || loc_pos - zoff < Z64_END_SIZE)
			return vt_err_set(err, VT_EFORMAT,
					  "zip: zip64 locator at offset %llu: zip64 end record offset %llu is out of range",
					  ull(loc_pos), ull(zoff));
		rc = vt_src_read(src, zoff, z, Z64_END_SIZE, err);
		if (rc != 0)
			return rc;
		if (get32(z) != SIG_Z64_END)
			return vt_err_set(err, VT_EFORMAT, "zip: zip64 end record at offset %llu: bad signature",
					  ull(zoff));
		if (get64(z + 4) < Z64_END_SIZE - 12)
			return vt_err_set(err, VT_EFORMAT, "zip: zip64 end record at offset %llu: size %llu is too small",
					  ull(zoff), ull(get64(z + 4)));
		disk = get32(z + 16);
		cd_disk = get32(z + 20);
		n_here = get64(z + 24);
		end->n = get64(z + 32);
		end->cd_size = get64(z + 40);
		end->cd_off = get64(z + 48);
		end->end_start = zoff;
		pos = zoff;
	}
	if (disk != 0 || cd_disk != 0 || n_here != end->n)
		return vt_err_set(err, VT_EUNSUPPORTED,
				  "zip: end record at offset %llu: multi-disk archives are not supported", ull(pos));
	if (end->cd_off > end->end_start || end->cd_size > end->end_start - end->cd_off)
		return vt_err_set(err, VT_EFORMAT,
				  "zip: end record at offset %llu: central directory (%llu bytes at offset %llu) runs past it",
				  ull(pos), ull(end->cd_size), ull(end->cd_off));
	if (end->n == 0)
		return vt_err_set(err, VT_EFORMAT, "zip: end record at offset %llu: the archive has no entries",
				  ull(pos));
	if (end->n > VT_ZIP_MAX_ENTRIES)
		return vt_err_set(err, VT_EUNSUPPORTED,
				  "zip: end record at offset %llu: %llu entries, more than the limit of %d",
				  ull(pos), ull(end->n), VT_ZIP_MAX_ENTRIES);
	if (end->n > end->cd_size / CENTRAL_SIZE)
		return vt_err_set(err, VT_EFORMAT,
				  "zip: end record at offset %llu: %llu entries cannot fit in a %llu-byte central directory",
				  ull(pos), ull(end->n), ull(end->cd_size));
	return 0;
}

/* 0 if name is a safe relative path: no leading '/', no ".." component. */
static int bad_path(const char *name)
{
	const char *p = name;

	if (name[0] == '/')
		return 1;
	while (*p) {
		size_t len = strcspn(p, "/");
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return 1;
		p += len;
		if (*p == '/')
			p++;
	}
	return 0;
}

/*
 * zip64 extended information extra field (ID 0x0001) in a central directory entry: u64
 * values present only for the fixed fields that are all ones, in the order uncompressed
 * size, compressed size, header offset, then a u32 disk number.
 */
static int parse_zip64_extra(const unsigned char *x, size_t len, struct vt_zip_entry *e,
			     uint32_t *disk, uint64_t idx, uint64_t at, struct vt_err *err)
{
	while (len >= 4) {
		uint16_t id = get16(x), flen = get16(x + 2);
		const unsigned char *f = x + 4;
		size_t need = 0;

		if (flen > len - 4)
			return vt_err_set(err, VT_EFORMAT,
					  "zip: central directory entry %llu at offset %llu: extra field runs past its end",
					  ull(idx), ull(at));
		if (id == 0x0001) {
			need = (e->size == U32_MAX_) * 8 + (e->csize == U32_MAX_) * 8 +
			       (e->header_offset == U32_MAX_) * 8 + (*disk == 0xFFFF) * 4;
			if (flen < need)
				return vt_err_set(err, VT_EFORMAT,
						  "zip: central directory entry %llu at offset %llu: zip64 field of %u bytes is too short",
						  ull(idx), ull(at), (unsigned)flen);
			if (e->size == U32_MAX_) {
				e->size = get64(f);
				f += 8;
			}
			if (e->csize == U32_MAX_) {
				e->csize = get64(f);
				f += 8;
			}
			if (e->header_offset == U32_MAX_) {
				e->header_offset = get64(f);
				f += 8;
			}
			if (*disk == 0xFFFF)
				*disk = get32(f);
			return 0;
		}
		x += 4 + flen;
		len -= 4 + (size_t)flen;
	}
	return 0;
}

/*
 * Central directory entry (46 bytes + name + extra + comment):
 *   u32 50 4B 01 02, u16 made by, u16 needed, u16 flags, u16 method, u16 time, u16 date,
 *   u32 crc32, u32 csize, u32 usize, u16 name length, u16 extra length, u16 comment length,
 *   u16 disk, u16 internal attributes, u32 external attributes, u32 local header offset
 * Returns the entry's size in *used.
 */
static int parse_central(const unsigned char *p, uint64_t left, uint64_t idx, uint64_t at,
			 struct vt_zip_entry *e, uint64_t *used, struct vt_err *err)
{
	uint16_t flags, nlen, xlen, clen;
	uint32_t disk;
	int rc;

	if (left < CENTRAL_SIZE)
		return vt_err_set(err, VT_EFORMAT,
				  "zip: central directory entry %llu at offset %llu: runs past the end of the directory",
				  ull(idx), ull(at));
	if (get32(p) != SIG_CENTRAL)
		return vt_err_set(err, VT_EFORMAT, "zip: central directory entry %llu at offset %llu: bad signature",
				  ull(idx), ull(at));
	flags = get16(p + 8);
	e->method = get16(p + 10);
	e->crc = get32(p + 16);
	e->csize = get32(p + 20);
	e->size = get32(p + 24);
	nlen = get16(p + 28);
	xlen = get16(p + 30);
	clen = get16(p + 32);
	disk = get16(p + 34);
	e->header_offset = get32(p + 42);
	if ((uint64_t)CENTRAL_SIZE + nlen + xlen + clen > left)
		return vt_err_set(err, VT_EFORMAT,
				  "zip: central directory entry %llu at offset %llu: name, extra field or comment runs past the end of the directory",
				  ull(idx), ull(at));
	*used = (uint64_t)CENTRAL_SIZE + nlen + xlen + clen;
	if (nlen == 0)
		return vt_err_set(err, VT_EFORMAT, "zip: central directory entry %llu at offset %llu: empty name",
				  ull(idx), ull(at));
	if (nlen > ZIP_MAX_NAME)
		return vt_err_set(err, VT_EUNSUPPORTED,
				  "zip: central directory entry %llu at offset %llu: name of %u bytes, more than the limit of %d",
				  ull(idx), ull(at), (unsigned)nlen, ZIP_MAX_NAME);
	if (memchr(p + CENTRAL_SIZE, 0, nlen))
		return vt_err_set(err, VT_EFORMAT, "zip: central directory entry %llu at offset %llu: name contains a NUL byte",
				  ull(idx), ull(at));
	e->name = malloc((size_t)nlen + 1);
	if (!e->name)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	memcpy(e->name, p + CENTRAL_SIZE, nlen);
	e->name[nlen] = '\0';
	if (flags & 0x0041)
		return vt_err_set(err, VT_EUNSUPPORTED,
				  "zip: central directory entry %llu at offset %llu: record '%s' is encrypted",
				  ull(idx), ull(at), e->name);
	if (e->method != 0 && e->method != 8)
		return vt_err_set(err, VT_EUNSUPPORTED,
				  "zip: central directory entry %llu at offset %llu: record '%s' uses compression method %u (only 0 stored and 8 deflated are supported)",
				  ull(idx), ull(at), e->name, (unsigned)e->method);
	rc = parse_zip64_extra(p + CENTRAL_SIZE + nlen, xlen, e, &disk, idx, at, err);
	if (rc != 0)
		return rc;
	if (disk != 0)
		return vt_err_set(err, VT_EUNSUPPORTED,
				  "zip: central directory entry %llu at offset %llu: record '%s' is on disk %u (multi-disk archives are not supported)",
				  ull(idx), ull(at), e->name, (unsigned)disk);
	if (bad_path(e->name))
		return vt_err_set(err, VT_EFORMAT,
				  "zip: central directory entry %llu at offset %llu: unsafe name '%s' (leading '/' or '..')",
				  ull(idx), ull(at), e->name);
	if (e->method == 0 && e->csize != e->size)
		return vt_err_set(err, VT_EFORMAT,
				  "zip: central directory entry %llu at offset %llu: stored record '%s' has compressed size %llu but size %llu",
				  ull(idx), ull(at), e->name, ull(e->csize), ull(e->size));
	return 0;
}

/*
 * Local file header (30 bytes + name + extra):
 *   u32 50 4B 03 04, u16 needed, u16 flags, u16 method, u16 time, u16 date, u32 crc32,
 *   u32 csize, u32 usize, u16 name length, u16 extra length
 * Only the name (which must match the directory's) and the lengths are used.
 */
static int place_data(const struct vt_src *src, struct vt_zip_entry *e, uint64_t cd_off,
		      struct vt_err *err)
{
	unsigned char h[LOCAL_SIZE + ZIP_MAX_NAME];
	size_t nlen = strlen(e->name);
	uint64_t H = e->header_offset;
	int rc;

	if (H > cd_off || cd_off - H < LOCAL_SIZE + nlen)
		return vt_err_set(err, VT_EFORMAT,
				  "zip: record '%s': local header at offset %llu runs past the start of the central directory (%llu)",
				  e->name, ull(H), ull(cd_off));
	rc = vt_src_read(src, H, h, LOCAL_SIZE + nlen, err);
	if (rc != 0)
		return rc;
	if (get32(h) != SIG_LOCAL)
		return vt_err_set(err, VT_EFORMAT, "zip: record '%s': local header at offset %llu: bad signature",
				  e->name, ull(H));
	if (get16(h + 26) != nlen || memcmp(h + LOCAL_SIZE, e->name, nlen) != 0)
		return vt_err_set(err, VT_EFORMAT,
				  "zip: record '%s': local header at offset %llu has a different name",
				  e->name, ull(H));
	e->data_offset = H + LOCAL_SIZE + nlen + get16(h + 28);
	if (e->data_offset > cd_off || e->csize > cd_off - e->data_offset)
		return vt_err_set(err, VT_EFORMAT,
				  "zip: record '%s': %llu bytes of data at offset %llu run past the start of the central directory (%llu)",
				  e->name, ull(e->csize), ull(e->data_offset), ull(cd_off));
	return 0;
}

int vt_zip_open(struct vt_zip *zip, const struct vt_src *src, struct vt_err *err)
{
	struct zip_end end = { 0, 0, 0, 0 };
	struct vt_zip_entry **idx;
	unsigned char *cd_buf = NULL;
	const unsigned char *cd;
	uint64_t i, pos = 0;
	size_t plen;
	const char *slash;
	int rc;

	memset(zip, 0, sizeof(*zip));
	zip->src = src;
	rc = find_end(src, &end, err);
	if (rc != 0)
		return rc;
	if (src->mem) {
		cd = src->mem + end.cd_off;
	} else {
		if (end.cd_size > SIZE_MAX)
			return vt_err_set(err, VT_ENOMEM, "zip: central directory of %llu bytes is too large",
					  ull(end.cd_size));
		cd_buf = malloc(end.cd_size ? (size_t)end.cd_size : 1);
		if (!cd_buf)
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		rc = vt_src_read(src, end.cd_off, cd_buf, (size_t)end.cd_size, err);
		if (rc != 0) {
			free(cd_buf);
			return rc;
		}
		cd = cd_buf;
	}

	/* end.n <= VT_ZIP_MAX_ENTRIES, so this cannot overflow. */
	zip->entries = calloc((size_t)end.n, sizeof(*zip->entries) + sizeof(*idx));
	if (!zip->entries) {
		free(cd_buf);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	zip->n = end.n;
	idx = by_name(zip);
	for (i = 0; i < zip->n && rc == 0; i++) {
		uint64_t used = 0;

		rc = parse_central(cd + pos, end.cd_size - pos, i, end.cd_off + pos, &zip->entries[i], &used,
				   err);
		pos += used;
		idx[i] = &zip->entries[i];
	}
	free(cd_buf);
	if (rc != 0)
		goto fail;

	/* PyTorchStreamReader: the prefix is the first entry's text before its first '/'. */
	slash = strchr(zip->entries[0].name, '/');
	if (!slash) {
		rc = vt_err_set(err, VT_EFORMAT,
				"zip: central directory entry 0 at offset %llu: file in archive is not in a subdirectory: '%s'",
				ull(end.cd_off), zip->entries[0].name);
		goto fail;
	}
	plen = (size_t)(slash - zip->entries[0].name);
	zip->prefix = malloc(plen + 1);
	if (!zip->prefix) {
		rc = vt_err_set(err, VT_ENOMEM, "out of memory");
		goto fail;
	}
	memcpy(zip->prefix, zip->entries[0].name, plen);
	zip->prefix[plen] = '\0';
	for (i = 0; i < zip->n; i++) {
		const char *name = zip->entries[i].name;
		if (strncmp(name, zip->prefix, plen) != 0 || name[plen] != '/') {
			rc = vt_err_set(err, VT_EFORMAT,
					"zip: central directory entry %llu: file in archive is not in a subdirectory: '%s' is outside '%s/'",
					ull(i), name, zip->prefix);
			goto fail;
		}
		rc = place_data(src, &zip->entries[i], end.cd_off, err);
		if (rc != 0)
			goto fail;
	}

	/* Records in file order must not overlap: each one's data ends before the next header. */
	qsort(idx, (size_t)zip->n, sizeof(*idx), cmp_offset);
	for (i = 1; i < zip->n; i++) {
		const struct vt_zip_entry *a = idx[i - 1], *b = idx[i];
		if (a->data_offset + a->csize > b->header_offset) {
			rc = vt_err_set(err, VT_EFORMAT,
					"zip: record '%s' (data at offset %llu, %llu bytes) overlaps record '%s' (header at offset %llu)",
					a->name, ull(a->data_offset), ull(a->csize), b->name, ull(b->header_offset));
			goto fail;
		}
	}
	qsort(idx, (size_t)zip->n, sizeof(*idx), cmp_name);
	for (i = 1; i < zip->n; i++) {
		if (strcmp(idx[i - 1]->name, idx[i]->name) == 0) {
			rc = vt_err_set(err, VT_EFORMAT, "zip: record '%s' appears twice (header offsets %llu and %llu)",
					idx[i]->name, ull(idx[i - 1]->header_offset), ull(idx[i]->header_offset));
			goto fail;
		}
	}
	return 0;

fail:
	vt_zip_release(zip);
	return rc;
}

void vt_zip_release(struct vt_zip *zip)
{
	uint64_t i;

	if (zip->entries)
		for (i = 0; i < zip->n; i++)
			free(zip->entries[i].name);
	free(zip->entries);
	free(zip->prefix);
	memset(zip, 0, sizeof(*zip));
}

const struct vt_zip_entry *vt_zip_find(const struct vt_zip *zip, const char *name)
{
	struct vt_zip_entry **idx;
	size_t plen, lo = 0, hi;

	if (!zip->entries || !zip->prefix || zip->n == 0)
		return NULL;
	idx = by_name(zip);
	plen = strlen(zip->prefix);
	hi = (size_t)zip->n;
	/* Every name starts with "<prefix>/", so the order of full names is that of the rest. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(idx[mid]->name + plen + 1, name);
		if (c == 0)
			return idx[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Streams the uncompressed bytes of a record to sink in pieces of at most ZIP_CHUNK bytes,
 * failing if they are not exactly e->size bytes.  Stored data goes through buf; deflated
 * data is read into a second buffer and inflated into buf.
 */
typedef void (*zip_sink)(void *ctx, const unsigned char *p, size_t n);

static int stream_record(const struct vt_zip *zip, const struct vt_zip_entry *e, zip_sink sink,
			 void *ctx, struct vt_err *err)
{
	unsigned char *buf = NULL, *in = NULL;
	uint64_t off = e->data_offset, left = e->csize, total = 0;
	z_stream zs;
	int rc = 0, zrc;

	buf = malloc(ZIP_CHUNK);
	if (!buf)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	if (e->method == 0) {
		while (left > 0 && rc == 0) {
			size_t k = left > ZIP_CHUNK ? ZIP_CHUNK : (size_t)left;
			rc = vt_src_read(zip->src, off, buf, k, err);
			if (rc == 0)
				sink(ctx, buf, k);
			off += k;
			left -= k;
		}
		free(buf);
		return rc;
	}

	memset(&zs, 0, sizeof(zs));
	in = malloc(ZIP_CHUNK);
	if (!in || inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
		free(in);
		free(buf);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	for (;;) {
		size_t got;

		if (zs.avail_in == 0 && left > 0) {
			size_t k = left > ZIP_CHUNK ? ZIP_CHUNK : (size_t)left;
			rc = vt_src_read(zip->src, off, in, k, err);
			if (rc != 0)
				break;
			zs.next_in = in;
			zs.avail_in = (uInt)k;
			off += k;
			left -= k;
		}
		zs.next_out = buf;
		zs.avail_out = ZIP_CHUNK;
		zrc = inflate(&zs, Z_NO_FLUSH);
		got = ZIP_CHUNK - zs.avail_out;
		if (got > e->size - total) {
			rc = vt_err_set(err, VT_EFORMAT,
					"zip: record '%s': deflated data at offset %llu inflates to more than its %llu bytes",
					e->name, ull(e->data_offset), ull(e->size));
			break;
		}
		if (got > 0)
			sink(ctx, buf, got);
		total += got;
		if (zrc == Z_STREAM_END)
			break;
		if (zrc == Z_BUF_ERROR && zs.avail_in == 0 && left == 0) {
			rc = vt_err_set(err, VT_EFORMAT,
					"zip: record '%s': deflated data at offset %llu ends early (%llu of %llu bytes)",
					e->name, ull(e->data_offset), ull(total), ull(e->size));
			break;
		}
		if (zrc != Z_OK) {
			rc = vt_err_set(err, VT_EFORMAT, "zip: record '%s': bad deflated data at offset %llu: %s",
					e->name, ull(e->data_offset), zs.msg ? zs.msg : "inflate failed");
			break;
		}
	}
	inflateEnd(&zs);
	free(in);
	free(buf);
	if (rc == 0 && total != e->size)
		rc = vt_err_set(err, VT_EFORMAT,
				"zip: record '%s': deflated data at offset %llu inflates to %llu bytes, the directory says %llu",
				e->name, ull(e->data_offset), ull(total), ull(e->size));
	return rc;
}

struct copy_sink {
	unsigned char *dst;
	size_t at;
};

static void copy_to(void *ctx, const unsigned char *p, size_t n)
{
	struct copy_sink *c = ctx;

	memcpy(c->dst + c->at, p, n);
	c->at += n;
}

static void crc_to(void *ctx, const unsigned char *p, size_t n)
{
	uint32_t *crc = ctx;

	*crc = (uint32_t)crc32(*crc, p, (uInt)n);
}

int vt_zip_read(const struct vt_zip *zip, const struct vt_zip_entry *e, uint64_t max,
		unsigned char **out, struct vt_err *err)
{
	unsigned char *buf;
	int rc;

	*out = NULL;
	if (e->size > max || e->size >= SIZE_MAX)
		return vt_err_set(err, VT_ENOMEM, "zip: record '%s' is %llu bytes, more than the limit of %llu",
				  e->name, ull(e->size), ull(max));
	buf = malloc((size_t)e->size + 1);
	if (!buf)
		return vt_err_set(err, VT_ENOMEM, "zip: record '%s': out of memory for %llu bytes",
				  e->name, ull(e->size));
	if (e->method == 0) {
		rc = vt_src_read(zip->src, e->data_offset, buf, (size_t)e->size, err);
	} else {
		struct copy_sink c = { buf, 0 };
		rc = stream_record(zip, e, copy_to, &c, err);
	}
	if (rc != 0) {
		free(buf);
		return rc;
	}
	buf[e->size] = '\0';
	*out = buf;
	return 0;
}

int vt_zip_verify(const struct vt_zip *zip, const struct vt_zip_entry *e, struct vt_err *err)
{
	uint32_t crc = (uint32_t)crc32(0, NULL, 0);
	int rc = stream_record(zip, e, crc_to, &crc, err);

	if (rc != 0)
		return rc;
	if (crc != e->crc)
		return vt_err_set(err, VT_EFORMAT, "zip: record '%s': CRC-32 mismatch (directory 0x%08x, data 0x%08x)",
				  e->name, (unsigned)e->crc, (unsigned)crc);
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Writer */

int vt_zipw_init(struct vt_zipw *w, struct vt_out *out, const char *prefix, struct vt_err *err)
{
	memset(w, 0, sizeof(*w));
	if (prefix[0] == '\0' || strchr(prefix, '/') || strcmp(prefix, "..") == 0 ||
	    strlen(prefix) >= ZIP_MAX_NAME)
		return vt_err_set(err, VT_EUSAGE, "zip: bad archive folder name '%s'", prefix);
	w->out = out;
	w->prefix = strdup(prefix);
	if (!w->prefix)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	return 0;
}

/* Both the local header and the descriptor get zip64 forms on the same condition. */
static int rec_zip64(uint64_t size, uint64_t H)
{
	return size >= U32_MAX_ || H >= U32_MAX_;
}

int vt_zipw_begin(struct vt_zipw *w, const char *name, uint64_t size, struct vt_err *err)
{
	unsigned char h[LOCAL_SIZE + ZIP_MAX_NAME + 4 + 24 + 4 + VT_ZIP_ALIGN], *p;
	size_t plen = strlen(w->prefix), nlen = strlen(name), full, pad;
	uint64_t H = w->out->off, start;
	struct vt_zipw_rec *r;
	int rc;

	if (w->open)
		return vt_err_set(err, VT_EUSAGE, "zip: record '%s' is still open", w->recs[w->n - 1].name);
	full = plen + 1 + nlen;
	if (nlen == 0 || full > ZIP_MAX_NAME)
		return vt_err_set(err, VT_EUSAGE, "zip: bad record name '%s' (empty or longer than %d bytes)",
				  name, ZIP_MAX_NAME);
	if (w->n >= VT_ZIP_MAX_ENTRIES)
		return vt_err_set(err, VT_EUSAGE, "zip: more than %d records", VT_ZIP_MAX_ENTRIES);
	if (w->n == w->cap) {
		uint64_t cap = w->cap ? w->cap * 2 : 16;
		struct vt_zipw_rec *recs = realloc(w->recs, (size_t)cap * sizeof(*recs));
		if (!recs)
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		w->recs = recs;
		w->cap = cap;
	}
	r = &w->recs[w->n];
	r->name = malloc(full + 1);
	if (!r->name)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	memcpy(r->name, w->prefix, plen);
	r->name[plen] = '/';
	memcpy(r->name + plen + 1, name, nlen + 1);
	r->header_offset = H;
	r->size = size;
	r->crc = 0;

	/* PyTorch's detail::getPadding: the data starts at the next multiple of VT_ZIP_ALIGN. */
	start = H + LOCAL_SIZE + full + 4;
	if (rec_zip64(size, H))
		start += 4 + (size >= U32_MAX_ ? 16 : 0) + (H >= U32_MAX_ ? 8 : 0);
	pad = (size_t)((VT_ZIP_ALIGN - start % VT_ZIP_ALIGN) % VT_ZIP_ALIGN);

	p = put32(h, SIG_LOCAL);
	p = put16(p, 0);                                /* version needed */
	p = put16(p, size ? 0x0808 : 0x0800);           /* descriptor follows, UTF-8 */
	p = put16(p, 0);                                /* stored */
	p = put32(p, 0);                                /* time, date */
	p = put32(p, 0);                                /* crc32: in the descriptor */
	p = put32(p, 0);                                /* csize */
	p = put32(p, 0);                                /* usize */
	p = put16(p, (uint16_t)full);
	p = put16(p, (uint16_t)(start + pad - H - LOCAL_SIZE - full));
	memcpy(p, r->name, full);
	p += full;
	if (rec_zip64(size, H)) {
		/* miniz writes the local zip64 field before compressing: csize is still 0. */
		p = put16(p, 0x0001);
		p = put16(p, (uint16_t)((size >= U32_MAX_ ? 16 : 0) + (H >= U32_MAX_ ? 8 : 0)));
		if (size >= U32_MAX_) {
			p = put64(p, size);
			p = put64(p, 0);
		}
		if (H >= U32_MAX_)
			p = put64(p, H);
	}
	p = put16(p, 0x4246);                           /* "FB" */
	p = put16(p, (uint16_t)pad);
	memset(p, 'Z', pad);
	p += pad;
	rc = vt_out_write(w->out, h, (size_t)(p - h), err);
	if (rc != 0) {
		free(r->name);
		r->name = NULL;
		return rc;
	}
	w->n++;
	w->open = 1;
	w->written = 0;
	w->crc = (uint32_t)crc32(0, NULL, 0);
	return 0;
}

static int check_room(const struct vt_zipw *w, uint64_t n, struct vt_err *err)
{
	const struct vt_zipw_rec *r;

	if (!w->open)
		return vt_err_set(err, VT_EUSAGE, "zip: no record is open");
	r = &w->recs[w->n - 1];
	if (n > r->size - w->written)
		return vt_err_set(err, VT_EUSAGE, "zip: record '%s': more than its %llu bytes written",
				  r->name, ull(r->size));
	return 0;
}

int vt_zipw_data(struct vt_zipw *w, const void *buf, size_t n, struct vt_err *err)
{
	const unsigned char *p = buf;
	size_t left = n;
	int rc = check_room(w, n, err);

	if (rc != 0)
		return rc;
	while (left > 0) {
		uInt k = left > UINT_MAX ? UINT_MAX : (uInt)left;
		w->crc = (uint32_t)crc32(w->crc, p, k);
		p += k;
		left -= k;
	}
	rc = vt_out_write(w->out, buf, n, err);
	if (rc == 0)
		w->written += n;
	return rc;
}

int vt_zipw_copy(struct vt_zipw *w, const struct vt_src *src, uint64_t off, uint64_t n,
		 const uint32_t *crc, struct vt_err *err)
{
	uint32_t c = (uint32_t)crc32(0, NULL, 0);
	int rc = check_room(w, n, err);

	if (rc != 0)
		return rc;
	if (crc) {
		rc = vt_out_copy(w->out, src, off, n, NULL, err);
		c = *crc;
	} else {
		rc = vt_out_copy(w->out, src, off, n, &c, err);
	}
	if (rc != 0)
		return rc;
	w->crc = (uint32_t)crc32_combine(w->crc, c, (z_off_t)n);
	w->written += n;
	return 0;
}

/* Data descriptor: u32 50 4B 07 08, u32 crc32, then csize and usize as u32, or as u64 when the
 * local header has a zip64 field. */
int vt_zipw_end(struct vt_zipw *w, struct vt_err *err)
{
	unsigned char d[24], *p = d;
	struct vt_zipw_rec *r;

	if (!w->open)
		return vt_err_set(err, VT_EUSAGE, "zip: no record is open");
	r = &w->recs[w->n - 1];
	if (w->written != r->size)
		return vt_err_set(err, VT_EUSAGE, "zip: record '%s': %llu of its %llu bytes written",
				  r->name, ull(w->written), ull(r->size));
	r->crc = w->crc;
	w->open = 0;
	if (r->size == 0)
		return 0;
	p = put32(p, SIG_DESC);
	p = put32(p, r->crc);
	if (rec_zip64(r->size, r->header_offset)) {
		p = put64(p, r->size);
		p = put64(p, r->size);
	} else {
		p = put32(p, (uint32_t)r->size);
		p = put32(p, (uint32_t)r->size);
	}
	return vt_out_write(w->out, d, (size_t)(p - d), err);
}

int vt_zipw_add(struct vt_zipw *w, const char *name, const void *buf, uint64_t size,
		struct vt_err *err)
{
	int rc;

	if (size > SIZE_MAX)
		return vt_err_set(err, VT_ENOMEM, "zip: record '%s' is too large", name);
	rc = vt_zipw_begin(w, name, size, err);
	if (rc == 0)
		rc = vt_zipw_data(w, buf, (size_t)size, err);
	if (rc == 0)
		rc = vt_zipw_end(w, err);
	return rc;
}

/* The central directory is assembled in a buffer flushed every 64 KiB. */
struct cd_buf {
	unsigned char b[65536 + CENTRAL_SIZE + ZIP_MAX_NAME + 4 + 24];
	size_t len;
};

int vt_zipw_finish(struct vt_zipw *w, struct vt_err *err)
{
	struct cd_buf *cb;
	unsigned char *p;
	uint64_t C = w->out->off, Z, Z64, i;
	int rc = 0;

	if (w->open)
		return vt_err_set(err, VT_EUSAGE, "zip: record '%s' is still open", w->recs[w->n - 1].name);
	cb = malloc(sizeof(*cb));
	if (!cb)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	cb->len = 0;
	for (i = 0; i < w->n && rc == 0; i++) {
		const struct vt_zipw_rec *r = &w->recs[i];
		size_t nlen = strlen(r->name);
		int big = r->size >= U32_MAX_, far = r->header_offset >= U32_MAX_;
		uint16_t xlen = (big || far) ? (uint16_t)(4 + big * 16 + far * 8) : 0;

		p = cb->b + cb->len;
		p = put32(p, SIG_CENTRAL);
		p = put16(p, 0);                        /* made by */
		p = put16(p, 0);                        /* needed */
		p = put16(p, r->size ? 0x0808 : 0x0800);
		p = put16(p, 0);                        /* stored */
		p = put32(p, 0);                        /* time, date */
		p = put32(p, r->crc);
		p = put32(p, clamp32(r->size));
		p = put32(p, clamp32(r->size));
		p = put16(p, (uint16_t)nlen);
		p = put16(p, xlen);
		p = put16(p, 0);                        /* comment */
		p = put16(p, 0);                        /* disk */
		p = put16(p, 0);                        /* internal attributes */
		p = put32(p, 0);                        /* external attributes */
		p = put32(p, clamp32(r->header_offset));
		memcpy(p, r->name, nlen);
		p += nlen;
		if (xlen) {
			p = put16(p, 0x0001);
			p = put16(p, (uint16_t)(xlen - 4));
			if (big) {
				p = put64(p, r->size);
				p = put64(p, r->size);
			}
			if (far)
				p = put64(p, r->header_offset);
		}
		cb->len = (size_t)(p - cb->b);
		if (cb->len >= 65536 || i + 1 == w->n) {
			rc = vt_out_write(w->out, cb->b, cb->len, err);
			cb->len = 0;
		}
	}
	free(cb);
	if (rc != 0)
		return rc;
	Z = w->out->off - C;
	Z64 = w->out->off;
	{
		unsigned char e[Z64_END_SIZE + Z64_LOC_SIZE + END_SIZE];

		p = put32(e, SIG_Z64_END);
		p = put64(p, Z64_END_SIZE - 12);
		p = put16(p, 0x031E);                   /* made by: Unix, 3.0 */
		p = put16(p, 0x002D);                   /* needed: 4.5 (zip64) */
		p = put32(p, 0);
		p = put32(p, 0);
		p = put64(p, w->n);
		p = put64(p, w->n);
		p = put64(p, Z);
		p = put64(p, C);

		p = put32(p, SIG_Z64_LOC);
		p = put32(p, 0);
		p = put64(p, Z64);
		p = put32(p, 1);

		p = put32(p, SIG_END);
		p = put16(p, 0);
		p = put16(p, 0);
		p = put16(p, w->n >= 0xFFFF ? 0xFFFF : (uint16_t)w->n);
		p = put16(p, w->n >= 0xFFFF ? 0xFFFF : (uint16_t)w->n);
		p = put32(p, clamp32(Z));
		p = put32(p, clamp32(C));
		p = put16(p, 0);
		rc = vt_out_write(w->out, e, (size_t)(p - e), err);
	}
	return rc;
}

void vt_zipw_release(struct vt_zipw *w)
{
	uint64_t i;

	if (w->recs)
		for (i = 0; i < w->n; i++)
			free(w->recs[i].name);
	free(w->recs);
	free(w->prefix);
	memset(w, 0, sizeof(*w));
}
