/* harness.h - the one small test harness: TAP lines, counted by tests/run.sh.
 *
 *   CHECK(cond, "what was expected %d", x);   one assertion
 *   return harness_done();                    from main: exit 1 if anything failed
 */
#ifndef VT_HARNESS_H
#define VT_HARNESS_H

#include <stdio.h>
#include <stdlib.h>

static int harness_n, harness_failed;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		harness_n++;                                               \
		if (cond) {                                                \
			printf("ok %d - ", harness_n);                     \
		} else {                                                   \
			harness_failed++;                                  \
			printf("not ok %d - %s:%d: ", harness_n, __FILE__, __LINE__); \
		}                                                          \
		printf(__VA_ARGS__);                                       \
		printf("\n");                                              \
	} while (0)

/* Reads a whole file into a new buffer, NUL-terminated after its *len bytes; NULL on failure. */
static inline unsigned char *harness_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n > 0 ? (size_t)n + 1 : 1);
	if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf)
		buf[n > 0 ? n : 0] = '\0';
	*len = n > 0 ? (size_t)n : 0;
	return buf;
}

static inline int harness_done(void)
{
	printf("1..%d\n", harness_n);
	fflush(stdout);
	return harness_failed ? 1 : 0;
}

#endif
