/* fuzz_zip.c - libFuzzer target for the zip reader (src/zip.c).
 *
 * Opens the input as an archive from memory, then reads, inflates and CRC-checks every
 * record.  Records are read with a 16 MiB cap, so a deflate bomb costs time, not memory.
 * Build and run: make fuzz (tools/fuzz.sh).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vt_zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vt_src src;
	struct vt_zip zip;
	struct vt_err err = { 0, "" };
	uint64_t i;

	vt_src_mem(&src, data, size, "fuzz");
	(void)vt_zip_detect(&src);
	if (vt_zip_open(&zip, &src, &err) != 0) {
		if (!err.msg[0] || err.code >= 0)
			abort(); /* every failure carries a negative code and a message */
		return 0;
	}
	for (i = 0; i < zip.n; i++) {
		const struct vt_zip_entry *e = &zip.entries[i];
		unsigned char *buf = NULL;
		if (vt_zip_read(&zip, e, 1u << 24, &buf, &err) == 0) {
			if (buf[e->size] != 0)
				abort(); /* the reader promises a NUL after the data */
			free(buf);
		} else if (buf) {
			abort(); /* nothing is handed out on failure */
		}
		(void)vt_zip_verify(&zip, e, &err);
		if (vt_zip_find(&zip, e->name + strlen(zip.prefix) + 1) == NULL)
			abort(); /* every entry is found under its own name */
	}
	(void)vt_zip_find(&zip, "data.pkl");
	vt_zip_release(&zip);
	return 0;
}
