/* vt_scan.h - what a file's pickles would make Python do: every global they import, every
 * call (REDUCE, INST, OBJ), every class instantiated through NEWOBJ and every BUILD, with a
 * verdict on each.  Nothing is called: the unpickler runs with hooks that record and build
 * nothing but inert records.
 *
 * Containers: torch.save zip archives (every *.pkl record: data.pkl, TorchScript's
 * constants.pkl and debug pickles), legacy torch.save streams (their four pickles), and plain
 * pickles (every pickle back to back from offset 0, as far as they parse).  A safetensors file
 * holds no pickle: it is clean once its header reads.
 *
 * Verdicts: a call of a callable vggtl turns into data (tensor rebuilders, OrderedDict...)
 * and the import or NEWOBJ/BUILD of a class are clean; a call of anything else is a finding,
 * since Python would run it; a denylisted name (vt_pth_global_kind) anywhere is a dangerous
 * finding.  Denylists are bypassed again and again, so an unknown call is never clean.
 */
#ifndef VT_SCAN_H
#define VT_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "vt_err.h"
#include "vt_io.h"

enum vt_scan_op { VT_SCAN_IMPORT, VT_SCAN_CALL, VT_SCAN_NEWOBJ, VT_SCAN_BUILD };
enum vt_scan_verdict { VT_SCAN_DATA, VT_SCAN_CLEAN, VT_SCAN_UNKNOWN, VT_SCAN_DANGEROUS };

extern const char *const vt_scan_op_names[];      /* "import", "call", "newobj", "build" */
extern const char *const vt_scan_verdict_names[]; /* "data", "clean", "unknown call", "dangerous" */

/* One kind of event: the same op on the same name in the same pickle, counted. */
struct vt_scan_item {
	const char *pickle;  /* "archive/data.pkl", "legacy object pickle", "pickle 1" */
	uint64_t offset;     /* of the first occurrence, within that pickle's bytes */
	enum vt_scan_op op;
	char *name;          /* "os.system"; "(the result of a call)" for a call of a non-global */
	enum vt_scan_verdict verdict;
	uint64_t count;
};

struct vt_scan {
	const char *container; /* "zip", "torchscript", "legacy", "pickle", "safetensors" */
	char **pickles;        /* the pickles scanned, by name */
	size_t npickles;
	struct vt_scan_item *items;
	size_t n, cap;
	size_t *slots, nslots; /* hash index of items: index + 1, 0 when empty */
	size_t findings, dangerous;
	int incomplete;        /* a pickle stopped parsing: err says where */
	struct vt_err err;
};

/* Scans src; returns 0 when every pickle was read (sc->findings says the rest), or the error
 * that made the file unreadable: sc holds what was found before it (sc->incomplete). */
int vt_scan_src(struct vt_scan *sc, const struct vt_src *src, struct vt_err *err);
int vt_scan_file(struct vt_scan *sc, const char *path, struct vt_err *err);
void vt_scan_release(struct vt_scan *sc);

#endif
