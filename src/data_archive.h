/* data_archive.h - the archive reader behind vt_data_load (internal to the library; see
 * src/data_archive.c).  One entry at a time, in the archive's order, never unpacked to disk. */
#ifndef VT_DATA_ARCHIVE_H
#define VT_DATA_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "vt_err.h"

struct arc;

enum { ARC_FILE = 1, ARC_DIR = 2 };

/* Opens path, or the len bytes at data when data is not NULL (name is for messages either
 * way; it must outlive the handle).  *a is NULL after a failure. */
int arc_open(struct arc **a, const char *path, const void *data, size_t len, const char *name,
	     struct vt_err *err);
/* The next file or folder entry: 1 with *path (normalised: no "./" parts, no trailing '/';
 * valid until the next call) and *type, 0 at the end.  Other entries (links, devices) are
 * passed over; a path that escapes the archive ("../", absolute) is an error. */
int arc_next(struct arc *a, const char **path, int *type, struct vt_err *err);
/* The current file entry's bytes (*data owned by the caller), at most max bytes and never
 * more than the entry declares. */
int arc_read(struct arc *a, size_t max, unsigned char **data, size_t *len, struct vt_err *err);
void arc_close(struct arc *a);

#endif
