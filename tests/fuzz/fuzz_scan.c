/* fuzz_scan.c - libFuzzer target for vggtl scan (src/scan.c): the input as a zip archive,
 * a legacy stream or plain pickles, every pickle run with the recording hooks.  A failure
 * must carry a message; every item a name and a verdict.  Build and run: make fuzz.
 */
#include <stdint.h>
#include <stdlib.h>

#include "vt_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vt_src src;
	struct vt_scan sc;
	struct vt_err err = { 0, "" };
	size_t i, findings = 0;
	int rc;

	vt_src_mem(&src, data, size, "fuzz");
	rc = vt_scan_src(&sc, &src, &err);
	if (rc && (!err.msg[0] || rc >= 0))
		abort();
	for (i = 0; i < sc.n; i++) {
		if (!sc.items[i].name || !sc.items[i].pickle || sc.items[i].count == 0)
			abort();
		findings += sc.items[i].verdict >= VT_SCAN_UNKNOWN;
	}
	if (findings != sc.findings)
		abort();
	vt_scan_release(&sc);
	return 0;
}
