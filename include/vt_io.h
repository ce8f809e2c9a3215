/* vt_io.h - byte sources for the readers and crash-safe output files for the writers.
 *
 * A struct vt_src is either an open file (read with pread, never mapped) or a memory buffer
 * (fuzzers, tests).  Every read is bounds-checked against the source size.
 *
 * A struct vt_out writes to a temporary file in the destination folder; vt_out_commit()
 * fsyncs it and renames it over the destination, so a failed or killed run never leaves a
 * half-written file and never replaces the previous one with a partial one.
 */
#ifndef VT_IO_H
#define VT_IO_H

#include <stdint.h>
#include <stddef.h>

#include "vt_err.h"

struct vt_src {
	int fd;                   /* -1 for a memory source */
	const unsigned char *mem; /* NULL for a file source */
	uint64_t size;
	const char *name;         /* for messages; not owned */
};

int vt_src_open(struct vt_src *src, const char *path, struct vt_err *err);
void vt_src_mem(struct vt_src *src, const void *data, size_t size, const char *name);
/* Reads exactly n bytes at off, or fails with VT_EFORMAT ("truncated") without reading. */
int vt_src_read(const struct vt_src *src, uint64_t off, void *buf, size_t n, struct vt_err *err);
void vt_src_close(struct vt_src *src);

struct vt_out {
	int fd;
	char *path;     /* destination (owned copy) */
	char *tmp_path; /* temporary file beside it (owned) */
	uint64_t off;   /* bytes written so far */
	uint64_t kicked; /* bytes whose writeback has been started */
};

int vt_out_open(struct vt_out *out, const char *path, struct vt_err *err);
int vt_out_write(struct vt_out *out, const void *buf, size_t n, struct vt_err *err);
/* Appends n bytes of src starting at off. If crc is not NULL, *crc is updated with the
 * CRC-32 of the copied bytes (zlib crc32 convention). Plain read/write through a 4 MiB
 * buffer: measured faster here than copy_file_range, whose page-cache splicing suffers from
 * the 64-byte (not page) aligned destinations of a torch.save archive. */
int vt_out_copy(struct vt_out *out, const struct vt_src *src, uint64_t off, uint64_t n,
		uint32_t *crc, struct vt_err *err);
/* fsync, rename over the destination, fsync the folder. Releases out either way. */
int vt_out_commit(struct vt_out *out, struct vt_err *err);
/* Removes the temporary file and releases out; safe to call after commit. */
void vt_out_abort(struct vt_out *out);

#endif
