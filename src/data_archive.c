/* data_archive.c - reading datasets out of archives with libarchive (see src/data_archive.h).
 *
 * Formats: zip (stored or deflated, zip64; the central directory is used when the file can
 * seek) and tar (ustar, pax, GNU long names, old v7), either plain or compressed with gzip
 * (.tar.gz, .tgz; concatenated members allowed) or xz (.tar.xz).  Entries are streamed one
 * at a time: what vt_data_load keeps of a member is read into memory, decoded and dropped,
 * and nothing is ever written to disk.
 * Safety: an entry whose name is absolute or has a ".." component (either separator, '/'
 * or '\\') makes the whole archive an error: vggtl never writes entries out, but such a name
 * means the archive was made to attack whoever unpacks it.  A member is read into memory only
 * up to the caller's bound (vt_data_load: 256 MiB) and never beyond its declared size, so a
 * member that inflates past what its header says, or a zip bomb, stops with an error instead
 * of filling memory.
 * Not supported: encrypted zip entries (an error naming the entry), 7z, rar, cpio and the
 * other formats libarchive knows (refused as "not an archive" rather than half-trusted),
 * compressions other than gzip and xz, symbolic and hard links inside archives (skipped).
 */
#include "data_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct arc {
	struct archive *ar;
	const char *name;
	char *path;     /* the current entry's normalised path */
	size_t path_cap;
	int64_t size;   /* the current entry's declared size, -1 when the archive does not say */
};

static int arc_fail(struct arc *a, int code, const char *what, struct vt_err *err)
{
	const char *why = archive_error_string(a->ar);

	return vt_err_set(err, code, "'%s': %s%s%s", a->name, what, why ? ": " : "", why ? why : "");
}

int arc_open(struct arc **out, const char *path, const void *data, size_t len, const char *name,
	     struct vt_err *err)
{
	struct arc *a = calloc(1, sizeof(*a));
	int r;

	*out = NULL;
	if (!a || !(a->ar = archive_read_new())) {
		free(a);
		return vt_err_set(err, VT_ENOMEM, "out of memory");
	}
	a->name = name;
	/* only what vggtl documents: no external decompressor is ever run */
	if (archive_read_support_filter_gzip(a->ar) != ARCHIVE_OK || archive_read_support_filter_xz(a->ar) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a->ar) != ARCHIVE_OK || archive_read_support_format_zip(a->ar) != ARCHIVE_OK) {
		r = arc_fail(a, VT_EUNSUPPORTED, "libarchive lacks gzip, xz, tar or zip support", err);
		arc_close(a);
		return r;
	}
	r = data ? archive_read_open_memory(a->ar, data, len) : archive_read_open_filename(a->ar, path, 1 << 16);
	if (r != ARCHIVE_OK) {
		/* libarchive reads the first bytes here, to tell the format */
		int e = archive_errno(a->ar);
		const char *why = archive_error_string(a->ar);
		if (e != ENOENT && e != EACCES && e != EIO && e != EISDIR && e != ENOMEM)
			r = vt_err_set(err, VT_EFORMAT, "'%s' is not a zip, tar, tar.gz, tgz or tar.xz archive, nor a "
				       "CIFAR-10 or image folder (libarchive: %s)", name, why ? why : "unknown format");
		else
			r = arc_fail(a, VT_EIO, "cannot open the archive", err);
		arc_close(a);
		return r;
	}
	*out = a;
	return 0;
}

/* ".." as a component, between separators or at either end */
static int has_dotdot(const char *p)
{
	const char *s = p;

	for (;;) {
		size_t n = strcspn(s, "/\\");
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return 1;
		if (!s[n])
			return 0;
		s += n + 1;
	}
}

static int set_path(struct arc *a, const char *raw, struct vt_err *err)
{
	size_t n;

	while (raw[0] == '.' && raw[1] == '/') /* tar -C dir . */
		for (raw += 2; *raw == '/';)
			raw++;
	if (strcmp(raw, ".") == 0)
		raw = "";
	n = strlen(raw);
	while (n > 0 && raw[n - 1] == '/')
		n--;
	if (n + 1 > a->path_cap) {
		char *p = realloc(a->path, n + 1);
		if (!p)
			return vt_err_set(err, VT_ENOMEM, "out of memory");
		a->path = p;
		a->path_cap = n + 1;
	}
	memcpy(a->path, raw, n);
	a->path[n] = '\0';
	return 0;
}

int arc_next(struct arc *a, const char **path, int *type, struct vt_err *err)
{
	for (;;) {
		struct archive_entry *e;
		const char *raw;
		int r = archive_read_next_header(a->ar, &e), rc;
		mode_t ft;

		if (r == ARCHIVE_EOF)
			return 0;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return arc_fail(a, VT_EFORMAT, archive_file_count(a->ar) == 0 ?
					"not a zip, tar, tar.gz, tgz or tar.xz archive, or a corrupt one" :
					"corrupt or truncated archive", err);
		raw = archive_entry_pathname(e);
		if (!raw)
			raw = archive_entry_pathname_utf8(e);
		if (!raw || !*raw)
			return vt_err_set(err, VT_EFORMAT, "'%s': entry %d has no name", a->name,
					  archive_file_count(a->ar));
		if (raw[0] == '/' || raw[0] == '\\' || has_dotdot(raw))
			return vt_err_set(err, VT_EUNSAFE, "'%s': entry '%s' escapes the archive (an absolute path "
					  "or '..'): refused", a->name, raw);
		ft = archive_entry_filetype(e);
		if ((ft != AE_IFREG && ft != AE_IFDIR) || archive_entry_hardlink(e))
			continue;
		if ((rc = set_path(a, raw, err)))
			return rc;
		if (!a->path[0])
			continue; /* "./" itself */
		a->size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
		*path = a->path;
		*type = ft == AE_IFDIR ? ARC_DIR : ARC_FILE;
		return 1;
	}
}

int arc_read(struct arc *a, size_t max, unsigned char **data, size_t *len, struct vt_err *err)
{
	/* the buffer grows with what actually comes out, not with what the header claims */
	unsigned char *buf = NULL;
	size_t have = 0, cap = 0;

	*data = NULL;
	*len = 0;
	if (a->size > (int64_t)max)
		return vt_err_set(err, VT_EUNSUPPORTED, "'%s': member '%s' is %lld bytes (at most %zu)", a->name,
				  a->path, (long long)a->size, max);
	for (;;) {
		la_ssize_t k;
		if (have == cap) {
			size_t ncap = cap ? 2 * cap : 1 << 16;
			unsigned char *nb;
			if (a->size >= 0 && ncap > (size_t)a->size + 1)
				ncap = (size_t)a->size + 1; /* one byte more, to see a member outgrow its size */
			if (ncap > max + 1)
				ncap = max + 1;
			if (ncap <= cap) {
				free(buf);
				return vt_err_set(err, VT_EFORMAT, "'%s': member '%s' holds more than %s%zu bytes",
						  a->name, a->path, a->size >= 0 ? "its declared " : "", cap - 1);
			}
			if (!(nb = realloc(buf, ncap))) {
				free(buf);
				return vt_err_set(err, VT_ENOMEM, "out of memory reading '%s' in '%s'", a->path, a->name);
			}
			buf = nb;
			cap = ncap;
		}
		k = archive_read_data(a->ar, buf + have, cap - have);
		if (k == ARCHIVE_WARN)
			continue;
		if (k < 0) {
			free(buf);
			return vt_err_set(err, VT_EFORMAT, "'%s': cannot read member '%s': %s", a->name, a->path,
					  archive_error_string(a->ar) ? archive_error_string(a->ar) : "corrupt data");
		}
		if (k == 0)
			break;
		have += (size_t)k;
		if ((a->size >= 0 && have > (size_t)a->size) || have > max) {
			free(buf);
			return vt_err_set(err, VT_EFORMAT, "'%s': member '%s' holds more than %s%zu bytes", a->name,
					  a->path, a->size >= 0 && (size_t)a->size <= max ? "its declared " : "",
					  a->size >= 0 && (size_t)a->size <= max ? (size_t)a->size : max);
		}
	}
	if (a->size >= 0 && have < (size_t)a->size) {
		free(buf);
		return vt_err_set(err, VT_EFORMAT, "'%s' is truncated: member '%s' ends after %zu of its %lld bytes",
				  a->name, a->path, have, (long long)a->size);
	}
	*data = buf;
	*len = have;
	return 0;
}

void arc_close(struct arc *a)
{
	if (!a)
		return;
	archive_read_free(a->ar);
	free(a->path);
	free(a);
}
