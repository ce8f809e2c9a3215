/* vt_zip.h - the zip container of torch.save files (PyTorch >= 1.6).
 *
 * Reader: central directory driven (local headers carry zeros for sizes and CRC), zip64 end
 * records, stored and deflated records, any archive folder name.  Limits: at most
 * VT_ZIP_MAX_ENTRIES entries, names at most 4096 bytes, no multi-disk archives, no
 * encryption.  Every offset and size from the file is checked against the file size; records
 * whose data overlap are refused.
 *
 * Writer: exactly PyTorch's miniz layout (shared/research/pth-format.md section 1.3): stored
 * records, local header with flags 0x0808 and zero sizes, an "FB" extra field padding the data
 * to a 64-byte boundary, a data descriptor after non-empty data, zip64 fields when a size or
 * offset reaches 4 GiB, and always the zip64 end record, locator and end record.
 */
#ifndef VT_ZIP_H
#define VT_ZIP_H

#include <stdint.h>

#include "vt_io.h"

#define VT_ZIP_MAX_ENTRIES 1000000
#define VT_ZIP_ALIGN 64

struct vt_zip_entry {
	char *name;             /* full name, e.g. "archive/data/0" (owned, NUL-terminated) */
	uint64_t header_offset; /* local header */
	uint64_t data_offset;   /* first byte of the (possibly compressed) data */
	uint64_t csize;         /* compressed size (== size when stored) */
	uint64_t size;          /* uncompressed size */
	uint32_t crc;           /* CRC-32 from the central directory */
	uint16_t method;        /* 0 stored, 8 deflated */
};

struct vt_zip {
	const struct vt_src *src; /* not owned */
	struct vt_zip_entry *entries;
	uint64_t n;
	char *prefix;             /* archive folder without the slash, e.g. "archive" */
};

/* 1 if the source starts with a zip local header signature, else 0. */
int vt_zip_detect(const struct vt_src *src);
int vt_zip_open(struct vt_zip *zip, const struct vt_src *src, struct vt_err *err);
void vt_zip_release(struct vt_zip *zip);
/* Looks up "<prefix>/<name>"; NULL when absent. */
const struct vt_zip_entry *vt_zip_find(const struct vt_zip *zip, const char *name);
/* Reads a whole record (inflating if needed) into a new malloc'ed buffer of e->size bytes
 * (plus a NUL byte after the data); refuses records larger than max. */
int vt_zip_read(const struct vt_zip *zip, const struct vt_zip_entry *e, uint64_t max,
		unsigned char **out, struct vt_err *err);
/* Recomputes the CRC-32 of a record (inflating if needed) and compares it with the directory. */
int vt_zip_verify(const struct vt_zip *zip, const struct vt_zip_entry *e, struct vt_err *err);

struct vt_zipw_rec {
	char *name;
	uint64_t header_offset, size;
	uint32_t crc;
};

struct vt_zipw {
	struct vt_out *out;     /* not owned */
	char *prefix;
	struct vt_zipw_rec *recs;
	uint64_t n, cap;
	/* the record being written */
	int open;
	uint64_t written;
	uint32_t crc;
};

int vt_zipw_init(struct vt_zipw *w, struct vt_out *out, const char *prefix, struct vt_err *err);
/* Starts record "<prefix>/<name>" of exactly size bytes: writes header and padding. */
int vt_zipw_begin(struct vt_zipw *w, const char *name, uint64_t size, struct vt_err *err);
int vt_zipw_data(struct vt_zipw *w, const void *buf, size_t n, struct vt_err *err);
/* Appends n bytes from src at off to the open record. crc, when known (from the source's
 * directory), is the CRC-32 of exactly those n bytes and spares computing it. */
int vt_zipw_copy(struct vt_zipw *w, const struct vt_src *src, uint64_t off, uint64_t n,
		 const uint32_t *crc, struct vt_err *err);
/* Checks that size bytes were written and writes the data descriptor. */
int vt_zipw_end(struct vt_zipw *w, struct vt_err *err);
int vt_zipw_add(struct vt_zipw *w, const char *name, const void *buf, uint64_t size,
		struct vt_err *err);
/* Writes the central directory and the end records. */
int vt_zipw_finish(struct vt_zipw *w, struct vt_err *err);
void vt_zipw_release(struct vt_zipw *w);

#endif
