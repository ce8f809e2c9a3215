/* vt_safetensors.h - Hugging Face's safetensors files: reading their header, and writing
 * them as safetensors.torch.save_file does (safetensors.c).
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON, then the data section:
 * every tensor's bytes, little-endian, C order, at data_offsets [begin, end) relative to the
 * section.  The reader is strict: the JSON must be an object of tensor entries
 * {"dtype", "shape", "data_offsets"} (no other field) plus an optional "__metadata__"
 * string->string map; names are unique; the entries cover the data section exactly (in
 * any key order), with no gap, overlap or trailing byte.  dtypes: F64 F32 F16 BF16 I64 I32
 * I16 I8 U8 BOOL; the others safetensors defines (U16..U64, F8_*, F6_*, F4, C64) are refused.
 * Not supported: headers over 100 MB (safetensors' own limit), more than VT_MAX_DIMS
 * dimensions, the \u0000 escape.
 *
 * vt_pth_open() recognises these files by content and fills a struct vt_pth as for a
 * torch.save'd state_dict, so every command reads them; see vt_pth.h.
 */
#ifndef VT_SAFETENSORS_H
#define VT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "vt_pth.h"

#define VT_ST_MAX_HEADER 100000000u /* bytes of JSON, as safetensors' MAX_HEADER_SIZE */

struct vt_st_entry {
	const char *name;          /* UTF-8, NUL-terminated (points into the header's pool) */
	int dtype;                 /* enum vt_dtype */
	int ndim;
	int64_t shape[VT_MAX_DIMS];
	uint64_t begin, end;       /* data_offsets, relative to data_start */
};

struct vt_st_header {
	struct vt_st_entry *t;     /* in the header's key order */
	size_t n;
	const char **meta;         /* "__metadata__": key meta[2i], value meta[2i + 1] */
	size_t nmeta;
	int has_meta;
	uint64_t data_start;       /* 8 + N: file offset of the data section */
	char *pool;                /* decoded strings (owned) */
	size_t cap, meta_cap;
};

/* 1 when src starts like a safetensors file: at least 9 bytes, a header length N >= 2 and
 * '{' as the first header byte (vt_st_read_header then says what else is wrong). */
int vt_st_detect(const struct vt_src *src);
/* Reads and checks the header of src; on success h is filled (release it either way). */
int vt_st_read_header(struct vt_st_header *h, const struct vt_src *src, struct vt_err *err);
void vt_st_header_release(struct vt_st_header *h);
/* safetensors' name of a dtype ("F32"), or NULL when it has none vggtl writes. */
const char *vt_st_dtype_name(int dtype);

/* Writes tensors t[0..n) to path atomically, in safetensors.torch.save_file's layout:
 * header {"__metadata__":{"format":"pt"}, tensors sorted by descending safetensors dtype
 * (I64 F64 F32 I32 BF16 F16 I16 I8 U8 BOOL) then by name}, space-padded to a multiple of 8,
 * then the bytes, contiguous (strided and offset tensors are gathered).  File-backed bytes
 * are read from src.  Refuses, as save_file does, tensors whose bytes overlap another's
 * (tied weights: safetensors cannot express sharing), and quantized or complex tensors. */
int vt_st_write(const char *path, const struct vt_src *src, const struct vt_named *t, size_t n,
		struct vt_err *err);

#endif
