/* sbuf.h - a growing text buffer for the repr writers (internal to the library). An
 * allocation failure sets oom and drops later writes; check it once at the end. */
#ifndef VT_SBUF_H
#define VT_SBUF_H

#include <stddef.h>

struct sbuf {
	char *s;
	size_t len, cap;
	int oom;
};

void sb_put(struct sbuf *b, const char *s, size_t n);
void sb_puts(struct sbuf *b, const char *s);
void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
