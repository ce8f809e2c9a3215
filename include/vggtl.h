/* vggtl.h - the vggtl library: reading and writing PyTorch .pth and safetensors files from C,
 * without Python.  Include this one header; link with `pkg-config --cflags --libs vggtl`.
 *
 * Conventions (every module header says more):
 * - Functions return 0 on success or a negative VT_E* code, and fill the caller's
 *   struct vt_err with a message naming the file, the offset or the key (vt_err.h).  The
 *   library never prints and never exits.
 * - Structs the caller owns are set up by *_init or *_open and freed by *_release or
 *   *_close; arrays a function mallocs are freed with the function its header names.
 * - Nothing read from a file is ever executed: the pickle reader is a data parser.
 *
 * The modules: vt_io.h (sources, atomic outputs), vt_zip.h, vt_pickle.h, vt_pth.h (torch.save
 * files: tensors, storages, writing state_dicts), vt_module.h (any model: weights, state_dict,
 * print), vt_scan.h, vt_safetensors.h, vt_model.h (the VGG graph), vt_data.h (CIFAR-10 and
 * image folders).
 */
#ifndef VGGTL_H
#define VGGTL_H

#define VT_VERSION_MAJOR 1
#define VT_VERSION_MINOR 0
#define VT_VERSION_PATCH 0
#define VT_VERSION "1.0.0"

#include "vt_err.h"
#include "vt_io.h"
#include "vt_zip.h"
#include "vt_pickle.h"
#include "vt_pth.h"
#include "vt_module.h"
#include "vt_scan.h"
#include "vt_safetensors.h"
#include "vt_model.h"
#include "vt_data.h"

/* The library's version, "1.0.0": the one it was built as (VT_VERSION is the header's). */
const char *vt_version(void);

#endif
