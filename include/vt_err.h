/* vt_err.h - the error record every library call fills.
 *
 * Library functions return 0 on success or a negative VT_E* code and, on failure, leave a
 * one-line message in the caller's struct vt_err.  Only the command layer prints messages
 * and chooses exit codes; the library never calls exit().
 */
#ifndef VT_ERR_H
#define VT_ERR_H

#include <stddef.h>

enum {
	VT_OK = 0,
	VT_EIO = -1,      /* the operating system refused a read or write */
	VT_EFORMAT = -2,  /* the bytes are not what the format allows */
	VT_EUNSUPPORTED = -3, /* valid, but outside what vggtl handles */
	VT_EUNSAFE = -4,  /* a pickle asked for a global outside the allow-list */
	VT_ENOMEM = -5,   /* allocation failed or a size would exceed the limits */
	VT_EUSAGE = -6,   /* the caller's request cannot be satisfied (bad layer size...) */
	VT_ENOTFOUND = -7 /* a file, record or key that should exist does not */
};

struct vt_err {
	int code;
	char msg[512];
};

/* Records code and a printf-style message; returns code so callers can `return vt_err_set(...)`. */
int vt_err_set(struct vt_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to the message already in err (used to add a file name). Returns err->code. */
int vt_err_prefix(struct vt_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
