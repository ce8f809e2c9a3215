/* err.c - filling struct vt_err (see include/vt_err.h). */
#include "vt_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int vt_err_set(struct vt_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int vt_err_prefix(struct vt_err *err, const char *fmt, ...)
{
	char head[256], old[sizeof(err->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	{
		size_t h = strlen(head), room = sizeof(err->msg);
		if (h > room - 3)
			h = room - 3;
		memcpy(err->msg, head, h);
		memcpy(err->msg + h, ": ", 2);
		strncpy(err->msg + h + 2, old, room - h - 3);
		err->msg[room - 1] = '\0';
	}
	return err->code;
}
