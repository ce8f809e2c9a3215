/* model_repr.c - print(model) for the module tree, byte for byte as torch 1.13 / 2.x print it.
 *
 * Module.__repr__ (torch/nn/modules/module.py): "<Class>(" then, when there are children or
 * more than one extra line, a newline-separated list of extra_repr() lines and "(<key>): "
 * child reprs indented by two spaces, then ")".  Each class's extra_repr() is transcribed
 * in extra_repr() below; Python floats print with repr() (vt_py_float_repr).
 */
#include "vt_model.h"

#include "sbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void vt_py_float_repr(double v, char *buf, size_t size)
{
	char sci[40], d[20], out[64];
	const char *p;
	int prec, exp10, ndig = 0, decpt, i, o = 0;

	if (isnan(v) || isinf(v) || v == 0.0) {
		snprintf(buf, size, "%s", isnan(v) ? "nan" : isinf(v) ? (v < 0 ? "-inf" : "inf") :
					  signbit(v) ? "-0.0" : "0.0");
		return;
	}
	/* the shortest digits that read back as v, which is what Python's repr() prints */
	for (prec = 1; prec < 17; prec++) {
		snprintf(sci, sizeof(sci), "%.*e", prec - 1, v);
		if (strtod(sci, NULL) == v)
			break;
	}
	snprintf(sci, sizeof(sci), "%.*e", prec - 1, v);
	for (p = sci; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			d[ndig++] = *p;
	exp10 = atoi(p + 1);
	while (ndig > 1 && d[ndig - 1] == '0')
		ndig--;
	decpt = exp10 + 1; /* digits before the decimal point */
	if (v < 0)
		out[o++] = '-';
	if (decpt > 16 || decpt < -3) { /* repr switches to exponent form outside 1e-4 .. 1e16 */
		out[o++] = d[0];
		if (ndig > 1) {
			out[o++] = '.';
			for (i = 1; i < ndig; i++)
				out[o++] = d[i];
		}
		o += snprintf(out + o, sizeof(out) - (size_t)o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
	} else if (decpt <= 0) {
		out[o++] = '0';
		out[o++] = '.';
		for (i = 0; i < -decpt; i++)
			out[o++] = '0';
		for (i = 0; i < ndig; i++)
			out[o++] = d[i];
	} else {
		for (i = 0; i < decpt || i < ndig; i++) {
			if (i == decpt)
				out[o++] = '.';
			out[o++] = i < ndig ? d[i] : '0';
		}
		if (decpt >= ndig) {
			out[o++] = '.';
			out[o++] = '0';
		}
	}
	out[o] = '\0';
	snprintf(buf, size, "%s", out);
}

static void put_pair(struct sbuf *b, const struct vt_pair *p)
{
	if (p->is_tuple)
		sb_printf(b, "(%lld, %lld)", (long long)p->v[0], (long long)p->v[1]);
	else
		sb_printf(b, "%lld", (long long)p->v[0]);
}

static void put_float(struct sbuf *b, double v)
{
	char tmp[40];

	vt_py_float_repr(v, tmp, sizeof(tmp));
	sb_put(b, tmp, strlen(tmp));
}

static const char *py_bool(int v)
{
	return v ? "True" : "False";
}

static int pair_is(const struct vt_pair *p, int64_t v)
{
	return p->v[0] == v && (!p->is_tuple || p->v[1] == v);
}

/* extra_repr() of each class; returns 1 if it printed anything */
static void extra_repr(struct sbuf *b, const struct vt_module *m)
{
	switch (m->kind) {
	case VT_MOD_CONV2D:
		sb_printf(b, "%lld, %lld, kernel_size=", (long long)m->in, (long long)m->out);
		put_pair(b, &m->kernel);
		sb_put(b, ", stride=", 9);
		put_pair(b, &m->stride);
		if (!pair_is(&m->padding, 0)) {
			sb_put(b, ", padding=", 10);
			put_pair(b, &m->padding);
		}
		if (!pair_is(&m->dilation, 1)) {
			sb_put(b, ", dilation=", 11);
			put_pair(b, &m->dilation);
		}
		if (m->groups != 1)
			sb_printf(b, ", groups=%lld", (long long)m->groups);
		if (!m->t[VT_T_BIAS])
			sb_put(b, ", bias=False", 12);
		if (strcmp(m->padding_mode, "zeros") != 0)
			sb_printf(b, ", padding_mode=%s", m->padding_mode);
		break;
	case VT_MOD_BATCHNORM2D:
		sb_printf(b, "%lld, eps=", (long long)m->in);
		put_float(b, m->eps);
		sb_put(b, ", momentum=", 11);
		if (m->momentum_none)
			sb_put(b, "None", 4);
		else
			put_float(b, m->momentum);
		sb_printf(b, ", affine=%s, track_running_stats=%s", py_bool(m->affine), py_bool(m->track_running_stats));
		break;
	case VT_MOD_RELU:
		if (m->inplace)
			sb_put(b, "inplace=True", 12);
		break;
	case VT_MOD_MAXPOOL2D:
		sb_put(b, "kernel_size=", 12);
		put_pair(b, &m->kernel);
		sb_put(b, ", stride=", 9);
		put_pair(b, &m->stride);
		sb_put(b, ", padding=", 10);
		put_pair(b, &m->padding);
		sb_put(b, ", dilation=", 11);
		put_pair(b, &m->dilation);
		sb_printf(b, ", ceil_mode=%s", py_bool(m->ceil_mode));
		break;
	case VT_MOD_ADAPTIVEAVGPOOL2D:
		sb_put(b, "output_size=", 12);
		put_pair(b, &m->output_size);
		break;
	case VT_MOD_LINEAR:
		sb_printf(b, "in_features=%lld, out_features=%lld, bias=%s", (long long)m->in, (long long)m->out,
			  py_bool(m->t[VT_T_BIAS] != NULL));
		break;
	case VT_MOD_DROPOUT:
		sb_put(b, "p=", 2);
		put_float(b, m->p);
		sb_printf(b, ", inplace=%s", py_bool(m->inplace));
		break;
	case VT_MOD_FLATTEN:
		sb_printf(b, "start_dim=%lld, end_dim=%lld", (long long)m->start_dim, (long long)m->end_dim);
		break;
	default:
		break;
	}
}

static const char *const class_names[VT_MOD_KIND_COUNT] = {
	"VGG", "Sequential", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "AdaptiveAvgPool2d", "Linear",
	"Dropout", "Flatten"
};

/* Writes repr(m); every line after the first is indented by indent spaces (_addindent). */
static void repr_module(struct sbuf *b, const struct vt_module *m, int indent)
{
	size_t i;

	sb_printf(b, "%s(", class_names[m->kind]);
	if (m->nchild == 0) {
		extra_repr(b, m); /* every extra_repr here is a single line */
	} else {
		size_t mark = b->len;
		extra_repr(b, m);
		if (b->len > mark) { /* extra lines come before the children, on their own line */
			char *extra = strdup(b->s + mark);
			b->len = mark;
			sb_printf(b, "\n%*s%s", indent + 2, "", extra ? extra : "");
			free(extra);
		}
		for (i = 0; i < m->nchild; i++) {
			sb_printf(b, "\n%*s(%s): ", indent + 2, "", m->child[i]->name);
			repr_module(b, m->child[i], indent + 2);
		}
		sb_printf(b, "\n%*s", indent, "");
	}
	sb_put(b, ")", 1);
}

char *vt_model_repr(const struct vt_model *m)
{
	struct sbuf b = { 0 };

	repr_module(&b, m->root, 0);
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s;
}
