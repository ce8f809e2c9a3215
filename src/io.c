/* io.c - bounds-checked byte sources and crash-safe output files (see include/vt_io.h).
 *
 * Output files are created as "<dir>/.<base>.tmp.XXXXXX" beside the destination (same file
 * system, so rename() is atomic), written, fsync'ed, then renamed over the destination.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "vt_io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

int vt_src_open(struct vt_src *src, const char *path, struct vt_err *err)
{
	struct stat st;

	memset(src, 0, sizeof(*src));
	src->fd = -1;
	src->name = path;
	src->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (src->fd < 0)
		return vt_err_set(err, errno == ENOENT ? VT_ENOTFOUND : VT_EIO,
				  "cannot open '%s': %s", path, strerror(errno));
	if (fstat(src->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(src->fd);
		src->fd = -1;
		return vt_err_set(err, VT_EIO, "'%s' is not a regular file", path);
	}
	src->size = (uint64_t)st.st_size;
	return 0;
}

void vt_src_mem(struct vt_src *src, const void *data, size_t size, const char *name)
{
	src->fd = -1;
	src->mem = data;
	src->size = size;
	src->name = name;
}

int vt_src_read(const struct vt_src *src, uint64_t off, void *buf, size_t n, struct vt_err *err)
{
	unsigned char *p = buf;

	if (off > src->size || n > src->size - off)
		return vt_err_set(err, VT_EFORMAT,
				  "truncated: %zu bytes wanted at offset %llu of a %llu-byte file", n,
				  (unsigned long long)off, (unsigned long long)src->size);
	if (src->mem) {
		memcpy(buf, src->mem + off, n);
		return 0;
	}
	while (n > 0) {
		ssize_t got = pread(src->fd, p, n, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return vt_err_set(err, VT_EIO, "read error at offset %llu: %s",
					  (unsigned long long)off, got < 0 ? strerror(errno) : "file shrank");
		p += got;
		off += (uint64_t)got;
		n -= (size_t)got;
	}
	return 0;
}

void vt_src_close(struct vt_src *src)
{
	if (src->fd >= 0)
		close(src->fd);
	src->fd = -1;
}

int vt_out_open(struct vt_out *out, const char *path, struct vt_err *err)
{
	char *d = strdup(path), *b = strdup(path);
	size_t len;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	if (!d || !b) {
		free(d);
		free(b);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	len = strlen(path) + 32;
	out->tmp_path = malloc(len);
	out->path = strdup(path);
	if (out->tmp_path && out->path) {
		snprintf(out->tmp_path, len, "%s/.%s.tmp.XXXXXX", dirname(d), basename(b));
		out->fd = mkostemp(out->tmp_path, O_CLOEXEC);
	}
	free(d);
	free(b);
	if (out->fd < 0) {
		int e = errno;
		free(out->tmp_path);
		free(out->path);
		out->tmp_path = out->path = NULL;
		return vt_err_set(err, VT_EIO, "cannot create '%s': %s", path, strerror(e));
	}
	/* mkostemp makes 0600; give the file the permissions a plain creat() would. */
	{
		mode_t mask = umask(0);
		umask(mask);
		fchmod(out->fd, 0666 & ~mask);
	}
	return 0;
}

int vt_out_write(struct vt_out *out, const void *buf, size_t n, struct vt_err *err)
{
	const unsigned char *p = buf;

	while (n > 0) {
		ssize_t put = write(out->fd, p, n);
		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			return vt_err_set(err, VT_EIO, "cannot write '%s': %s", out->path,
					  put < 0 ? strerror(errno) : "no space");
		p += put;
		n -= (size_t)put;
		out->off += (uint64_t)put;
	}
	/* every 8 MiB, start the writeback of what came before: the fsync in vt_out_commit then
	 * finds most of a big file already on its way to disk, the disk working while vggtl
	 * makes the rest, instead of all of it starting then */
	if (out->off - out->kicked >= (8u << 20)) {
		sync_file_range(out->fd, (off64_t)out->kicked, (off64_t)(out->off - out->kicked), SYNC_FILE_RANGE_WRITE);
		out->kicked = out->off;
	}
	return 0;
}

int vt_out_copy(struct vt_out *out, const struct vt_src *src, uint64_t off, uint64_t n,
		uint32_t *crc, struct vt_err *err)
{
	enum { CHUNK = 4 << 20 };
	unsigned char *buf;
	int rc = 0;

	if (off > src->size || n > src->size - off)
		return vt_err_set(err, VT_EFORMAT, "record at offset %llu runs past the end of the file",
				  (unsigned long long)off);
	buf = malloc(CHUNK);
	if (!buf)
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	while (n > 0 && rc == 0) {
		size_t k = n > CHUNK ? CHUNK : (size_t)n;
		rc = vt_src_read(src, off, buf, k, err);
		if (rc == 0 && crc)
			*crc = (uint32_t)crc32(*crc, buf, (uInt)k);
		if (rc == 0)
			rc = vt_out_write(out, buf, k, err);
		off += k;
		n -= k;
	}
	free(buf);
	return rc;
}

static void out_free(struct vt_out *out)
{
	if (out->fd >= 0)
		close(out->fd);
	out->fd = -1;
	free(out->path);
	free(out->tmp_path);
	out->path = out->tmp_path = NULL;
}

int vt_out_commit(struct vt_out *out, struct vt_err *err)
{
	int rc = 0;

	if (fsync(out->fd) != 0 || close(out->fd) != 0) {
		rc = vt_err_set(err, VT_EIO, "cannot write '%s': %s", out->path, strerror(errno));
		out->fd = -1;
		vt_out_abort(out);
		return rc;
	}
	out->fd = -1;
	if (rename(out->tmp_path, out->path) != 0) {
		rc = vt_err_set(err, VT_EIO, "cannot rename into '%s': %s", out->path, strerror(errno));
		vt_out_abort(out);
		return rc;
	}
	{
		char *d = strdup(out->path);
		int dfd = d ? open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		free(d);
	}
	out_free(out);
	return 0;
}

void vt_out_abort(struct vt_out *out)
{
	if (out->tmp_path)
		unlink(out->tmp_path);
	out_free(out);
}
