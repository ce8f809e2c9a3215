/* harness.h - the one small test harness: TAP lines, counted by tests/run.sh.
 *
 *   CHECK(cond, "what was expected %d", x);   one assertion
 *   return harness_done();                    from main: exit 1 if anything failed
 */
#ifndef VT_HARNESS_H
#define VT_HARNESS_H

#include <stdio.h>

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

static inline int harness_done(void)
{
	printf("1..%d\n", harness_n);
	fflush(stdout);
	return harness_failed ? 1 : 0;
}

#endif
