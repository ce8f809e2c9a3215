/* version.c - the library's version (include/vggtl.h). */
#include "vggtl.h"

const char *vt_version(void)
{
	return VT_VERSION;
}
