/* module_repr.c - print(model) for any module tree read from a file (see include/vt_module.h).
 *
 * Module.__repr__ of torch 1.13 (torch/nn/modules/module.py): "<Class>(" then, when there are
 * children or the extra_repr() has several lines, every extra line and "(<key>): <child>"
 * on lines of their own, indented by two spaces (_addindent), then ")"; a single extra line
 * and no children print inline.  <Class> is the pickled class name, so user classes that keep
 * Module's __repr__ (a tutorial's Tudui) print as Python prints them.
 *
 * extra_repr() is transcribed per class in the table `classes` below, from the attributes the
 * pickle holds (the module's __dict__).  A class missing from the table prints no extra text,
 * as Module.extra_repr does; subclasses of standard layers (torchvision's LayerNorm2d) are
 * listed with their base's function.  Classes with a __repr__ of their own (torchvision's
 * FrozenBatchNorm2d, StochasticDepth, RoIAlign...) are in `own_reprs`: one text, no children.
 * Values print as Python's str() and repr() print them (py_str/py_repr).
 *
 * Not done: classes are known by name only, as the pickle names them, so a user subclass of
 * a layer (class MyConv(nn.Conv2d)) prints no extra text, and a user class that reuses a
 * torch name gets torch's; a user's own extra_repr or __repr__ is Python code and is not run;
 * torch.ao quantized modules.
 */
#include "vt_module.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbuf.h"
#include "vt_model.h" /* vt_py_float_repr */

/* ---- Python's str() and repr() of pickled values ----------------------------------------- */

/* An extra_repr longer than this prints "..." from there: shared tuples can make a value's
 * text exponentially longer than its file. */
#define MAX_VALUE_TEXT 65536

static void py_repr(struct sbuf *b, const struct vt_pk *v, int depth);

/* repr() of a str: single quotes unless it holds a ' and no ", escapes as Python's. */
static void py_str_repr(struct sbuf *b, const char *s, size_t n)
{
	char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
	size_t i;

	sb_put(b, &q, 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\' || c == (unsigned char)q)
			sb_printf(b, "\\%c", c);
		else if (c == '\n')
			sb_puts(b, "\\n");
		else if (c == '\t')
			sb_puts(b, "\\t");
		else if (c == '\r')
			sb_puts(b, "\\r");
		else if (c < 0x20 || c == 0x7f)
			sb_printf(b, "\\x%02x", c);
		else
			sb_put(b, (const char *)&c, 1);
	}
	sb_put(b, &q, 1);
}

static void py_float(struct sbuf *b, double f)
{
	char tmp[40];

	vt_py_float_repr(f, tmp, sizeof(tmp));
	sb_puts(b, tmp);
}

static void py_seq(struct sbuf *b, const struct vt_pk *v, const char *open, const char *close, int depth)
{
	size_t i;

	sb_puts(b, open);
	for (i = 0; i < v->u.seq.n && b->len <= MAX_VALUE_TEXT; i++) {
		if (i)
			sb_puts(b, ", ");
		py_repr(b, v->u.seq.items[i], depth + 1);
	}
	if (v->kind == VT_PK_TUPLE && v->u.seq.n == 1)
		sb_puts(b, ",");
	sb_puts(b, close);
}

static void py_repr(struct sbuf *b, const struct vt_pk *v, int depth)
{
	size_t i;

	if (b->len > MAX_VALUE_TEXT) {
		if (b->len < MAX_VALUE_TEXT + 8)
			sb_puts(b, "...");
		return;
	}
	if (!v || depth > 32) {
		sb_puts(b, "...");
		return;
	}
	switch (v->kind) {
	case VT_PK_NONE:
		sb_puts(b, "None");
		break;
	case VT_PK_BOOL:
		sb_puts(b, v->u.b ? "True" : "False");
		break;
	case VT_PK_INT:
		sb_printf(b, "%lld", (long long)v->u.i);
		break;
	case VT_PK_FLOAT:
		py_float(b, v->u.f);
		break;
	case VT_PK_STR:
		py_str_repr(b, v->u.str.s, v->u.str.len);
		break;
	case VT_PK_BYTES:
		sb_puts(b, "b");
		py_str_repr(b, v->u.str.s, v->u.str.len);
		break;
	case VT_PK_TUPLE:
		py_seq(b, v, "(", ")", depth);
		break;
	case VT_PK_LIST:
		py_seq(b, v, "[", "]", depth);
		break;
	case VT_PK_SET:
		if (v->u.seq.n == 0)
			sb_puts(b, "set()");
		else
			py_seq(b, v, "{", "}", depth);
		break;
	case VT_PK_DICT:
		sb_puts(b, "{");
		for (i = 0; i < v->u.dict.n; i++) {
			if (i)
				sb_puts(b, ", ");
			py_repr(b, v->u.dict.keys[i], depth + 1);
			sb_puts(b, ": ");
			py_repr(b, v->u.dict.vals[i], depth + 1);
		}
		sb_puts(b, "}");
		break;
	case VT_PK_GLOBAL:
		sb_printf(b, "<%s.%s>", v->u.global.module, v->u.global.name);
		break;
	default: {
		char cls[256];
		sb_printf(b, "<%s>", vt_pk_class_path(v, cls, sizeof(cls)));
		break;
	}
	}
}

/* str(): text prints bare, everything else as repr(). */
static void py_str(struct sbuf *b, const struct vt_pk *v)
{
	if (v && v->kind == VT_PK_STR)
		sb_put(b, v->u.str.s, v->u.str.len);
	else
		py_repr(b, v, 0);
}

/* ---- the attributes extra_repr reads ----------------------------------------------------- */

static const struct vt_pk *attr(const struct vt_pk *mod, const char *name)
{
	return vt_pk_dict_get(vt_pk_obj_state(mod), name);
}

/* getattr(module, name): the instance __dict__ first, then _parameters, _buffers and
 * _modules, as Module.__getattr__ looks; NULL when none has it. */
static const struct vt_pk *dict_get_n(const struct vt_pk *d, const char *s, size_t n)
{
	size_t i;

	for (i = 0; d && d->kind == VT_PK_DICT && i < d->u.dict.n; i++) {
		const struct vt_pk *k = d->u.dict.keys[i];
		if (k->kind == VT_PK_STR && k->u.str.len == n && memcmp(k->u.str.s, s, n) == 0)
			return d->u.dict.vals[i];
	}
	return NULL;
}

static const struct vt_pk *member_n(const struct vt_pk *m, const char *name, size_t n)
{
	const struct vt_pk *v = dict_get_n(vt_pk_obj_state(m), name, n);

	if (!v)
		v = dict_get_n(vt_mod_dict(m, "_parameters"), name, n);
	if (!v)
		v = dict_get_n(vt_mod_dict(m, "_buffers"), name, n);
	if (!v)
		v = dict_get_n(vt_mod_dict(m, "_modules"), name, n);
	return v;
}

static const struct vt_pk *member(const struct vt_pk *m, const char *name)
{
	return member_n(m, name, strlen(name));
}

/* `self.bias is not None`: a parameter or buffer, or a plain tensor attribute (pruning
 * moves bias to bias_orig and sets bias = bias_orig * mask). */
static int has_tensor(const struct vt_pk *mod, const char *name)
{
	const struct vt_pk *v = member(mod, name);

	return v && v->kind != VT_PK_NONE;
}

/* Python truthiness of an attribute: False, None, 0, 0.0, "" and () are false. */
static int truthy(const struct vt_pk *v)
{
	if (!v)
		return 0;
	switch (v->kind) {
	case VT_PK_NONE:
		return 0;
	case VT_PK_BOOL:
		return v->u.b;
	case VT_PK_INT:
		return v->u.i != 0;
	case VT_PK_FLOAT:
		return v->u.f != 0.0;
	case VT_PK_STR:
	case VT_PK_BYTES:
		return v->u.str.len != 0;
	case VT_PK_TUPLE:
	case VT_PK_LIST:
	case VT_PK_SET:
		return v->u.seq.n != 0;
	case VT_PK_DICT:
		return v->u.dict.n != 0;
	default:
		return 1;
	}
}

/* v equals the int x, or is a tuple of x's (Conv's `self.padding != (0,) * len(self.padding)`). */
static int all_ints(const struct vt_pk *v, int64_t x)
{
	size_t i;

	if (v && v->kind == VT_PK_INT)
		return v->u.i == x;
	if (!v || v->kind != VT_PK_TUPLE)
		return 0;
	for (i = 0; i < v->u.seq.n; i++)
		if (v->u.seq.items[i]->kind != VT_PK_INT || v->u.seq.items[i]->u.i != x)
			return 0;
	return 1;
}

/* Python's str.format over the module's attributes: "{name}" is str(attr), "{name!r}"
 * repr(attr); "{{" and "}}" are braces. */
static void fmt(struct sbuf *b, const struct vt_pk *mod, const char *f)
{
	while (*f) {
		const char *close;
		if (f[0] == '{' && f[1] == '{') {
			sb_puts(b, "{");
			f += 2;
		} else if (f[0] == '}' && f[1] == '}') {
			sb_puts(b, "}");
			f += 2;
		} else if (f[0] == '{' && (close = strchr(f, '}'))) {
			char name[64];
			size_t n = (size_t)(close - f - 1);
			int rep = n > 2 && f[n - 1] == '!' && f[n] == 'r';
			if (rep)
				n -= 2;
			if (n >= sizeof(name))
				n = sizeof(name) - 1;
			memcpy(name, f + 1, n);
			name[n] = '\0';
			if (rep)
				py_repr(b, attr(mod, name), 0);
			else
				py_str(b, attr(mod, name));
			f = close + 1;
		} else {
			sb_put(b, f, 1);
			f++;
		}
	}
}

/* ---- the tests extra_repr makes ---------------------------------------------------------- */

/* `v is None`; an attribute the pickle lacks counts as None (older files, where the class's
 * __setstate__ or a later __init__ would default it). */
static int is_none(const struct vt_pk *v)
{
	return !v || v->kind == VT_PK_NONE;
}

/* `v is True` / `v is False`: only a bool is; inplace=1 is not True. */
static int is_bool(const struct vt_pk *v, int b)
{
	return v && v->kind == VT_PK_BOOL && !v->u.b == !b;
}

/* `v == x` for a number (bools compare as 0 and 1, as in Python); anything else is unequal. */
static int num_eq(const struct vt_pk *v, double x)
{
	if (!v)
		return 0;
	if (v->kind == VT_PK_INT)
		return (double)v->u.i == x;
	if (v->kind == VT_PK_FLOAT)
		return v->u.f == x;
	if (v->kind == VT_PK_BOOL)
		return (v->u.b ? 1.0 : 0.0) == x;
	return 0;
}

/* `v != x`, where a missing attribute takes its default (so the branch is not taken). */
static int num_ne(const struct vt_pk *v, double x)
{
	return v && !num_eq(v, x);
}

/* ---- extra_repr of each class ------------------------------------------------------------ */

/* _ConvNd (conv.py); padding may be a string ('same'), which is never all zeros. */
static void conv_repr(struct sbuf *b, const struct vt_pk *m)
{
	const struct vt_pk *pm = attr(m, "padding_mode");

	fmt(b, m, "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}");
	if (!all_ints(attr(m, "padding"), 0))
		fmt(b, m, ", padding={padding}");
	if (!all_ints(attr(m, "dilation"), 1))
		fmt(b, m, ", dilation={dilation}");
	if (!all_ints(attr(m, "output_padding"), 0))
		fmt(b, m, ", output_padding={output_padding}");
	if (num_ne(attr(m, "groups"), 1))
		fmt(b, m, ", groups={groups}");
	if (!has_tensor(m, "bias"))
		sb_puts(b, ", bias=False");
	if (pm && !vt_pk_is_str(pm, "zeros")) /* files from before padding_mode mean 'zeros' */
		fmt(b, m, ", padding_mode={padding_mode}");
}

static void linear_repr(struct sbuf *b, const struct vt_pk *m)
{
	fmt(b, m, "in_features={in_features}, out_features={out_features}, bias=");
	sb_puts(b, has_tensor(m, "bias") ? "True" : "False");
}

static void bilinear_repr(struct sbuf *b, const struct vt_pk *m)
{
	fmt(b, m, "in1_features={in1_features}, in2_features={in2_features}, out_features={out_features}, bias=");
	sb_puts(b, has_tensor(m, "bias") ? "True" : "False");
}

/* _NormBase: batch, instance and sync batch norms, lazy or not. */
/* ReLU, ReLU6, SiLU, Mish, SELU: the flag alone; the others append it after their values. */
static void inplace_repr(struct sbuf *b, const struct vt_pk *m)
{
	if (truthy(attr(m, "inplace")))
		sb_puts(b, "inplace=True");
}

static void inplace_tail(struct sbuf *b, const struct vt_pk *m)
{
	if (truthy(attr(m, "inplace")))
		sb_puts(b, ", inplace=True");
}

static void gelu_repr(struct sbuf *b, const struct vt_pk *m)
{
	const struct vt_pk *a = attr(m, "approximate");

	sb_puts(b, "approximate=");
	if (a)
		py_repr(b, a, 0);
	else /* GELU before torch 1.12 had only the exact form */
		sb_puts(b, "'none'");
}

/* GLU, and the softmaxes, whose __setstate__ gives files from before `dim` a None. */
static void dim_repr(struct sbuf *b, const struct vt_pk *m)
{
	if (is_none(attr(m, "dim")))
		sb_puts(b, "dim=None");
	else
		fmt(b, m, "dim={dim}");
}

/* Reflection, replication and ZeroPad2d: the padding tuple alone. */
/* _MaxUnpoolNd and _AvgPoolNd; AvgPool3d's __setstate__ defaults a missing padding to 0. */
static void unpool_avgpool_repr(struct sbuf *b, const struct vt_pk *m)
{
	fmt(b, m, "kernel_size={kernel_size}, stride={stride}, padding=");
	if (attr(m, "padding"))
		fmt(b, m, "{padding}");
	else
		sb_puts(b, "0");
}

/* RNNBase: each option only when it differs from its default, tested as rnn.py tests it
 * (identity for the bools, so bias=1 prints). */
static void rnn_repr(struct sbuf *b, const struct vt_pk *m)
{
	const struct vt_pk *v;

	fmt(b, m, "{input_size}, {hidden_size}");
	if (num_ne(attr(m, "proj_size"), 0)) /* missing before 1.8: __setstate__ makes it 0 */
		fmt(b, m, ", proj_size={proj_size}");
	if (num_ne(attr(m, "num_layers"), 1))
		fmt(b, m, ", num_layers={num_layers}");
	if ((v = attr(m, "bias")) && !is_bool(v, 1))
		fmt(b, m, ", bias={bias}");
	if ((v = attr(m, "batch_first")) && !is_bool(v, 0))
		fmt(b, m, ", batch_first={batch_first}");
	if (num_ne(attr(m, "dropout"), 0))
		fmt(b, m, ", dropout={dropout}");
	if ((v = attr(m, "bidirectional")) && !is_bool(v, 0))
		fmt(b, m, ", bidirectional={bidirectional}");
}

static void rnn_cell_repr(struct sbuf *b, const struct vt_pk *m)
{
	const struct vt_pk *v;

	fmt(b, m, "{input_size}, {hidden_size}");
	if ((v = attr(m, "bias")) && !is_bool(v, 1))
		fmt(b, m, ", bias={bias}");
	if ((v = attr(m, "nonlinearity")) && !vt_pk_is_str(v, "tanh"))
		fmt(b, m, ", nonlinearity={nonlinearity}");
}

static void embedding_repr(struct sbuf *b, const struct vt_pk *m)
{
	const struct vt_pk *v;

	fmt(b, m, "{num_embeddings}, {embedding_dim}");
	if (!is_none(attr(m, "padding_idx")))
		fmt(b, m, ", padding_idx={padding_idx}");
	if (!is_none(attr(m, "max_norm")))
		fmt(b, m, ", max_norm={max_norm}");
	if (num_ne(attr(m, "norm_type"), 2))
		fmt(b, m, ", norm_type={norm_type}");
	if ((v = attr(m, "scale_grad_by_freq")) && !is_bool(v, 0))
		fmt(b, m, ", scale_grad_by_freq={scale_grad_by_freq}");
	if ((v = attr(m, "sparse")) && !is_bool(v, 0))
		sb_puts(b, ", sparse=True");
}

/* mode is "{mode}" in torch 1.13, "{mode!r}" (quoted) in 2.x */
static void embedding_bag_common(struct sbuf *b, const struct vt_pk *m, const char *mode)
{
	const struct vt_pk *v;

	fmt(b, m, "{num_embeddings}, {embedding_dim}");
	if (!is_none(attr(m, "max_norm")))
		fmt(b, m, ", max_norm={max_norm}");
	if (num_ne(attr(m, "norm_type"), 2))
		fmt(b, m, ", norm_type={norm_type}");
	if ((v = attr(m, "scale_grad_by_freq")) && !is_bool(v, 0))
		fmt(b, m, ", scale_grad_by_freq={scale_grad_by_freq}");
	fmt(b, m, mode);
	if (!is_none(attr(m, "padding_idx")))
		fmt(b, m, ", padding_idx={padding_idx}");
}

static void embedding_bag_repr(struct sbuf *b, const struct vt_pk *m)
{
	embedding_bag_common(b, m, ", mode={mode}");
}

static void embedding_bag_repr_2x(struct sbuf *b, const struct vt_pk *m)
{
	embedding_bag_common(b, m, ", mode={mode!r}");
}

static void upsample_common(struct sbuf *b, const struct vt_pk *m, const char *mode)
{
	if (!is_none(attr(m, "scale_factor")))
		fmt(b, m, "scale_factor={scale_factor}");
	else
		fmt(b, m, "size={size}");
	fmt(b, m, mode);
}

static void upsample_repr(struct sbuf *b, const struct vt_pk *m)
{
	upsample_common(b, m, ", mode={mode}");
}

static void upsample_repr_2x(struct sbuf *b, const struct vt_pk *m)
{
	upsample_common(b, m, ", mode={mode!r}");
}

/* One entry of ParameterList/ParameterDict's extra_repr: "  (k): Parameter containing:
 * [torch.float32 of size 3x4]" (the list names the dtype, the dict torch.typename()), or
 * "Object of type: int" for what is not a tensor. */
static void param_line(struct sbuf *b, const struct vt_pk *key, const struct vt_pk *v, int typename)
{
	const struct vt_tensor *t = vt_pk_tensor(v);
	const char *loc = t && t->storage && t->storage->location ? t->storage->location : "";
	int cuda = strncmp(loc, "cuda", 4) == 0;
	int i;

	sb_puts(b, "  (");
	py_str(b, key);
	sb_puts(b, "): ");
	if (!t) {
		/* type(v).__name__, by kind (enum vt_pk_kind order) */
		static const char *const types[] = { "NoneType", "bool", "int", "float", "str", "bytes",
						     "tuple", "list", "set", "dict" };
		const char *type = !v ? "NoneType" : (size_t)v->kind < sizeof(types) / sizeof(types[0]) ? types[v->kind] :
			vt_pk_obj_class(v) ? vt_pk_obj_class(v) : "object";
		sb_printf(b, "Object of type: %s", type);
		return;
	}
	sb_printf(b, "%s containing: [", t->is_param ? "Parameter" : "Tensor");
	if (typename) { /* Tensor.type(): the legacy class, "FloatStorage" less "Storage" */
		const char *st = vt_dtype_info(t->dtype)->storage;
		sb_printf(b, "torch.%s%.*sTensor", cuda ? "cuda." : "", (int)(strlen(st) - strlen("Storage")), st);
	} else {
		sb_printf(b, "torch.%s", vt_dtype_info(t->dtype)->name);
	}
	sb_puts(b, " of size ");
	for (i = 0; i < t->ndim; i++)
		sb_printf(b, "%s%lld", i ? "x" : "", (long long)t->size[i]);
	if (cuda) /* torch.save writes "cuda:N"; get_device() is N */
		sb_printf(b, " (GPU %d)", loc[4] == ':' ? atoi(loc + 5) : 0);
	sb_puts(b, "]");
}

/* ParameterList (torch >= 1.12): items "0".."_size-1", read with getattr; older files kept
 * them all in _parameters. */
static void param_list_repr(struct sbuf *b, const struct vt_pk *m)
{
	const struct vt_pk *size = attr(m, "_size"), *params = vt_mod_dict(m, "_parameters"), *v;
	size_t i;

	if (size && size->kind == VT_PK_INT && size->u.i >= 0) {
		for (i = 0; i < (size_t)size->u.i; i++) {
			char k[24];
			struct vt_pk key = { 0 };
			snprintf(k, sizeof(k), "%zu", i);
			key.kind = VT_PK_STR;
			key.u.str.s = k;
			key.u.str.len = strlen(k);
			/* Python raises AttributeError past the last item; stopping also keeps a
			 * forged _size from running on */
			if (!(v = member(m, k)))
				break;
			if (i)
				sb_puts(b, "\n");
			param_line(b, &key, v, 0);
		}
	} else {
		for (i = 0; params && i < params->u.dict.n; i++) {
			if (i)
				sb_puts(b, "\n");
			param_line(b, params->u.dict.keys[i], params->u.dict.vals[i], 0);
		}
	}
}

/* ParameterDict: the keys of _keys in order (torch >= 1.12), else _parameters'. */
static void param_dict_repr(struct sbuf *b, const struct vt_pk *m)
{
	const struct vt_pk *keys = attr(m, "_keys"), *params = vt_mod_dict(m, "_parameters");
	size_t i;

	if (keys && keys->kind == VT_PK_DICT) {
		for (i = 0; i < keys->u.dict.n; i++) {
			const struct vt_pk *k = keys->u.dict.keys[i];
			if (i)
				sb_puts(b, "\n");
			param_line(b, k, k->kind == VT_PK_STR ? member_n(m, k->u.str.s, k->u.str.len) : NULL, 1);
		}
	} else {
		for (i = 0; params && i < params->u.dict.n; i++) {
			if (i)
				sb_puts(b, "\n");
			param_line(b, params->u.dict.keys[i], params->u.dict.vals[i], 1);
		}
	}
}

/* ---- classes with their own __repr__ (torchvision): the text between "Name(" and ")" --- */

static void frozen_bn_repr(struct sbuf *b, const struct vt_pk *m)
{
	const struct vt_tensor *w = vt_pk_tensor(member(m, "weight"));

	if (w && w->ndim > 0)
		sb_printf(b, "%lld", (long long)w->size[0]);
	else
		sb_puts(b, "?");
	fmt(b, m, ", eps={eps}");
}

/* RoIPool and PSRoIPool */
/* DeformConv2d compares its (always 2-tuple) padding and dilation with (0, 0) and (1, 1). */
static void deform_conv_repr(struct sbuf *b, const struct vt_pk *m)
{
	fmt(b, m, "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}");
	if (!all_ints(attr(m, "padding"), 0) || vt_pk_seq_len(attr(m, "padding")) != 2)
		fmt(b, m, ", padding={padding}");
	if (!all_ints(attr(m, "dilation"), 1) || vt_pk_seq_len(attr(m, "dilation")) != 2)
		fmt(b, m, ", dilation={dilation}");
	if (num_ne(attr(m, "groups"), 1))
		fmt(b, m, ", groups={groups}");
	if (!has_tensor(m, "bias"))
		sb_puts(b, ", bias=False");
}

static void rcnn_transform_repr(struct sbuf *b, const struct vt_pk *m)
{
	fmt(b, m, "\n    Normalize(mean={image_mean}, std={image_std})");
	fmt(b, m, "\n    Resize(min_size={min_size}, max_size={max_size}, mode='bilinear')\n");
}

typedef void (*extra_fn)(struct sbuf *b, const struct vt_pk *m);

/* A class's extra_repr (or own __repr__ body): fn, or else format (fmt's str.format over the
 * attributes) followed by ", inplace=True" when inplace is set and the module's is true. */
struct class_repr {
	const char *name; /* the class name; the module is not checked (subclasses keep theirs) */
	extra_fn fn;
	const char *format;
	int inplace;
};
#define FN(name, fn) { name, fn, NULL, 0 }
#define FMT(name, format) { name, NULL, format, 0 }
#define FMT_INPLACE(name, format) { name, NULL, format, 1 }

/* Class name -> extra_repr().  Subclasses that keep their base's extra_repr are listed by
 * their own name (the pickle names the class, not its bases). */
static const struct class_repr classes[] = {
	/* conv.py; torchvision's video Conv3DSimple and Conv3DNoTemporal are Conv3d */
	FN("Conv1d", conv_repr),
	FN("Conv2d", conv_repr),
	FN("Conv3d", conv_repr),
	FN("ConvTranspose1d", conv_repr),
	FN("ConvTranspose2d", conv_repr),
	FN("ConvTranspose3d", conv_repr),
	FN("LazyConv1d", conv_repr),
	FN("LazyConv2d", conv_repr),
	FN("LazyConv3d", conv_repr),
	FN("LazyConvTranspose1d", conv_repr),
	FN("LazyConvTranspose2d", conv_repr),
	FN("LazyConvTranspose3d", conv_repr),
	FN("Conv3DSimple", conv_repr),
	FN("Conv3DNoTemporal", conv_repr),
	/* linear.py (Identity has no extra_repr) */
	FN("Linear", linear_repr),
	FN("LazyLinear", linear_repr),
	FN("NonDynamicallyQuantizableLinear", linear_repr),
	FN("Bilinear", bilinear_repr),
	/* batchnorm.py, instancenorm.py */
	FMT("BatchNorm1d", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	FMT("BatchNorm2d", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	FMT("BatchNorm3d", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	FMT("LazyBatchNorm1d", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	FMT("LazyBatchNorm2d", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	FMT("LazyBatchNorm3d", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	FMT("SyncBatchNorm", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	FMT("InstanceNorm1d", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	FMT("InstanceNorm2d", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	FMT("InstanceNorm3d", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	FMT("LazyInstanceNorm1d", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	FMT("LazyInstanceNorm2d", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	FMT("LazyInstanceNorm3d", "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, track_running_stats={track_running_stats}"),
	/* normalization.py; torchvision's convnext LayerNorm2d is a LayerNorm */
	FMT("LayerNorm", "{normalized_shape}, eps={eps}, elementwise_affine={elementwise_affine}"),
	FMT("RMSNorm", "{normalized_shape}, eps={eps}, elementwise_affine={elementwise_affine}"), /* 2.4+ */
	FMT("LayerNorm2d", "{normalized_shape}, eps={eps}, elementwise_affine={elementwise_affine}"),
	FMT("GroupNorm", "{num_groups}, {num_channels}, eps={eps}, affine={affine}"),
	FMT("LocalResponseNorm", "{size}, alpha={alpha}, beta={beta}, k={k}"),
	FMT("CrossMapLRN2d", "{size}, alpha={alpha}, beta={beta}, k={k}"),
	/* activation.py (Sigmoid, Tanh, Hardswish, Hardsigmoid, Softsign, Tanhshrink,
	 * LogSigmoid, Softmax2d and MultiheadAttention have no extra_repr) */
	FN("ReLU", inplace_repr),
	FN("ReLU6", inplace_repr),
	FN("SiLU", inplace_repr),
	FN("Mish", inplace_repr),
	FN("SELU", inplace_repr),
	FMT_INPLACE("Threshold", "threshold={threshold}, value={value}"),
	FMT_INPLACE("RReLU", "lower={lower}, upper={upper}"),
	FMT_INPLACE("Hardtanh", "min_val={min_val}, max_val={max_val}"),
	FMT_INPLACE("ELU", "alpha={alpha}"),
	FMT_INPLACE("CELU", "alpha={alpha}"),
	FMT_INPLACE("LeakyReLU", "negative_slope={negative_slope}"),
	FN("GELU", gelu_repr),
	FMT("Hardshrink", "{lambd}"),
	FMT("Softshrink", "{lambd}"),
	FMT("Softplus", "beta={beta}, threshold={threshold}"),
	FMT("PReLU", "num_parameters={num_parameters}"),
	FN("GLU", dim_repr),
	FN("Softmin", dim_repr),
	FN("Softmax", dim_repr),
	FN("LogSoftmax", dim_repr),
	FMT("ChannelShuffle", "groups={groups}"),
	/* dropout.py */
	FMT("Dropout", "p={p}, inplace={inplace}"),
	FMT("Dropout1d", "p={p}, inplace={inplace}"),
	FMT("Dropout2d", "p={p}, inplace={inplace}"),
	FMT("Dropout3d", "p={p}, inplace={inplace}"),
	FMT("AlphaDropout", "p={p}, inplace={inplace}"),
	FMT("FeatureAlphaDropout", "p={p}, inplace={inplace}"),
	/* flatten.py, fold.py */
	FMT("Flatten", "start_dim={start_dim}, end_dim={end_dim}"),
	FMT("Unflatten", "dim={dim}, unflattened_size={unflattened_size}"),
	FMT("Fold", "output_size={output_size}, kernel_size={kernel_size}, dilation={dilation}, padding={padding}, stride={stride}"),
	FMT("Unfold", "kernel_size={kernel_size}, dilation={dilation}, padding={padding}, stride={stride}"),
	/* padding.py */
	FMT("ConstantPad1d", "padding={padding}, value={value}"),
	FMT("ConstantPad2d", "padding={padding}, value={value}"),
	FMT("ConstantPad3d", "padding={padding}, value={value}"),
	FMT("ZeroPad2d", "{padding}"),
	FMT("ZeroPad1d", "{padding}"), /* these four arrived in torch 2.1 */
	FMT("ZeroPad3d", "{padding}"),
	FMT("CircularPad1d", "{padding}"),
	FMT("CircularPad2d", "{padding}"),
	FMT("CircularPad3d", "{padding}"),
	FMT("ReflectionPad1d", "{padding}"),
	FMT("ReflectionPad2d", "{padding}"),
	FMT("ReflectionPad3d", "{padding}"),
	FMT("ReplicationPad1d", "{padding}"),
	FMT("ReplicationPad2d", "{padding}"),
	FMT("ReplicationPad3d", "{padding}"),
	/* pixelshuffle.py */
	FMT("PixelShuffle", "upscale_factor={upscale_factor}"),
	FMT("PixelUnshuffle", "downscale_factor={downscale_factor}"),
	/* pooling.py (FractionalMaxPool2d/3d have no extra_repr) */
	FMT("MaxPool1d", "kernel_size={kernel_size}, stride={stride}, padding={padding}, dilation={dilation}, ceil_mode={ceil_mode}"),
	FMT("MaxPool2d", "kernel_size={kernel_size}, stride={stride}, padding={padding}, dilation={dilation}, ceil_mode={ceil_mode}"),
	FMT("MaxPool3d", "kernel_size={kernel_size}, stride={stride}, padding={padding}, dilation={dilation}, ceil_mode={ceil_mode}"),
	FN("MaxUnpool1d", unpool_avgpool_repr),
	FN("MaxUnpool2d", unpool_avgpool_repr),
	FN("MaxUnpool3d", unpool_avgpool_repr),
	FN("AvgPool1d", unpool_avgpool_repr),
	FN("AvgPool2d", unpool_avgpool_repr),
	FN("AvgPool3d", unpool_avgpool_repr),
	FMT("LPPool1d", "norm_type={norm_type}, kernel_size={kernel_size}, stride={stride}, ceil_mode={ceil_mode}"),
	FMT("LPPool2d", "norm_type={norm_type}, kernel_size={kernel_size}, stride={stride}, ceil_mode={ceil_mode}"),
	FMT("AdaptiveMaxPool1d", "output_size={output_size}"),
	FMT("AdaptiveMaxPool2d", "output_size={output_size}"),
	FMT("AdaptiveMaxPool3d", "output_size={output_size}"),
	FMT("AdaptiveAvgPool1d", "output_size={output_size}"),
	FMT("AdaptiveAvgPool2d", "output_size={output_size}"),
	FMT("AdaptiveAvgPool3d", "output_size={output_size}"),
	/* rnn.py */
	FN("RNN", rnn_repr),
	FN("LSTM", rnn_repr),
	FN("GRU", rnn_repr),
	FN("RNNCell", rnn_cell_repr),
	FN("LSTMCell", rnn_cell_repr),
	FN("GRUCell", rnn_cell_repr),
	/* sparse.py, upsampling.py */
	FN("Embedding", embedding_repr),
	FN("EmbeddingBag", embedding_bag_repr),
	FN("Upsample", upsample_repr),
	FN("UpsamplingNearest2d", upsample_repr),
	FN("UpsamplingBilinear2d", upsample_repr),
	/* container.py (Sequential, ModuleList and ModuleDict print only their children) */
	FN("ParameterList", param_list_repr),
	FN("ParameterDict", param_dict_repr),
};

/* Class name -> a __repr__ of its own: it prints "Name(<text>)" and no children. */
static const struct class_repr own_reprs[] = {
	/* torchvision/ops */
	FN("FrozenBatchNorm2d", frozen_bn_repr),
	FMT("StochasticDepth", "p={p}, mode={mode}"),
	FMT("DropBlock2d", "p={p}, block_size={block_size}, inplace={inplace}"),
	FMT("DropBlock3d", "p={p}, block_size={block_size}, inplace={inplace}"),
	FMT("RoIAlign", "output_size={output_size}, spatial_scale={spatial_scale}, sampling_ratio={sampling_ratio}, aligned={aligned}"),
	FMT("PSRoIAlign", "output_size={output_size}, spatial_scale={spatial_scale}, sampling_ratio={sampling_ratio}"),
	FMT("RoIPool", "output_size={output_size}, spatial_scale={spatial_scale}"),
	FMT("PSRoIPool", "output_size={output_size}, spatial_scale={spatial_scale}"),
	FMT("MultiScaleRoIAlign", "featmap_names={featmap_names}, output_size={output_size}, sampling_ratio={sampling_ratio}"),
	FN("DeformConv2d", deform_conv_repr),
	/* torchvision/models/detection */
	FMT("DefaultBoxGenerator", "aspect_ratios={aspect_ratios}, clip={clip}, scales={scales}, steps={steps}"),
	FN("GeneralizedRCNNTransform", rcnn_transform_repr),
};

/* Where torch 2.x's text differs from 1.13's (found by printing the test corpus in both):
 * these rows come first for VT_TORCH_TEXT_2X.  ModuleList's compact form is in repr_module. */
static const struct class_repr classes_2x[] = {
	FN("Upsample", upsample_repr_2x),
	FN("UpsamplingNearest2d", upsample_repr_2x),
	FN("UpsamplingBilinear2d", upsample_repr_2x),
	FN("EmbeddingBag", embedding_bag_repr_2x),
};

static const struct class_repr *lookup(const struct class_repr *t, size_t n, const char *name)
{
	size_t i;

	for (i = 0; name && i < n; i++)
		if (strcmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

/* The class's entry in own_reprs (own) or classes, or NULL. */
static const struct class_repr *find_class_repr(const struct vt_pk *m, int own, enum vt_torch_text text)
{
	const char *name = vt_pk_obj_class(m);
	const struct class_repr *c;

	if (own)
		return lookup(own_reprs, sizeof(own_reprs) / sizeof(own_reprs[0]), name);
	if (text == VT_TORCH_TEXT_2X && (c = lookup(classes_2x, sizeof(classes_2x) / sizeof(classes_2x[0]), name)))
		return c;
	return lookup(classes, sizeof(classes) / sizeof(classes[0]), name);
}

static void write_extra(struct sbuf *b, const struct vt_pk *m, const struct class_repr *c)
{
	if (c->fn) {
		c->fn(b, m);
		return;
	}
	fmt(b, m, c->format);
	if (c->inplace)
		inplace_tail(b, m);
}

/* ---- Module.__repr__ --------------------------------------------------------------------- */

/* Appends text with every line after the first indented by indent spaces (_addindent). */
static void put_indented(struct sbuf *b, const char *s, size_t n, int indent)
{
	size_t i, start = 0;

	for (i = 0; i < n; i++)
		if (s[i] == '\n') {
			sb_put(b, s + start, i + 1 - start);
			sb_printf(b, "%*s", indent, "");
			start = i + 1;
		}
	sb_put(b, s + start, n - start);
}

/* Modules printed at most: a tree shared through the memo can be exponentially larger
 * than its file. */
#define MAX_PRINTED 100000

struct rctx {
	size_t budget;            /* modules that may still be printed */
	enum vt_torch_text text;  /* whose text where torch versions differ */
};

static void repr_module(struct sbuf *b, const struct vt_pk *m, int indent, int depth, struct rctx *rc);

/* torch 2.x's ModuleList.__repr__: runs of children that print the same are one line,
 * "(first-last): count x <text>". */
static void compact_list(struct sbuf *b, const struct vt_pk *mods, int indent, int depth, struct rctx *rc)
{
	size_t n = mods->u.dict.n, i, j;
	struct sbuf *t = calloc(n, sizeof(*t));

	if (!t) {
		b->oom = 1;
		return;
	}
	for (i = 0; i < n && !b->oom; i++) {
		repr_module(&t[i], mods->u.dict.vals[i], 0, depth + 1, rc);
		if (t[i].oom || !t[i].s)
			b->oom = 1;
	}
	for (i = 0; i < n && !b->oom; i = j + 1) {
		for (j = i; j + 1 < n && strcmp(t[j + 1].s, t[i].s) == 0; j++)
			;
		sb_printf(b, "\n%*s", indent + 2, "");
		if (j > i)
			sb_printf(b, "(%zu-%zu): %zu x ", i, j, j - i + 1);
		else
			sb_printf(b, "(%zu): ", i);
		put_indented(b, t[i].s, t[i].len, indent + 2);
	}
	sb_printf(b, "\n%*s", indent, "");
	for (i = 0; i < n; i++)
		free(t[i].s);
	free(t);
}

static void repr_module(struct sbuf *b, const struct vt_pk *m, int indent, int depth, struct rctx *rc)
{
	const struct vt_pk *mods = vt_mod_dict(m, "_modules");
	const char *name = vt_pk_obj_class(m);
	struct sbuf extra = { 0 };
	const struct class_repr *cr;
	size_t i, nchild = mods ? mods->u.dict.n : 0;

	if (!vt_mod_is_module(m) || depth > 64) { /* None in _modules, or not a module at all */
		if (m && m->kind == VT_PK_NONE)
			sb_puts(b, "None");
		else
			py_repr(b, m, 0);
		return;
	}
	if (rc->budget == 0) {
		b->oom = 1;
		return;
	}
	rc->budget--;
	if ((cr = find_class_repr(m, 1, rc->text))) { /* a __repr__ of its own; the parent indents its lines */
		sb_printf(&extra, "%s(", name);
		write_extra(&extra, m, cr);
		sb_puts(&extra, ")");
		if (extra.oom)
			b->oom = 1;
		else
			put_indented(b, extra.s, extra.len, indent);
		free(extra.s);
		return;
	}
	sb_printf(b, "%s(", name ? name : "?");
	if ((cr = find_class_repr(m, 0, rc->text)))
		write_extra(&extra, m, cr);
	if (extra.oom)
		b->oom = 1;
	if (nchild && rc->text == VT_TORCH_TEXT_2X && name && strcmp(name, "ModuleList") == 0) {
		compact_list(b, mods, indent, depth, rc);
	} else if (nchild == 0 && (!extra.s || !strchr(extra.s, '\n'))) {
		if (extra.s)
			sb_put(b, extra.s, extra.len);
	} else {
		if (extra.s && extra.len) {
			sb_printf(b, "\n%*s", indent + 2, "");
			put_indented(b, extra.s, extra.len, indent + 2);
		}
		for (i = 0; i < nchild; i++) {
			const struct vt_pk *k = mods->u.dict.keys[i];
			sb_printf(b, "\n%*s(", indent + 2, "");
			py_str(b, k);
			sb_puts(b, "): ");
			repr_module(b, mods->u.dict.vals[i], indent + 2, depth + 1, rc);
		}
		sb_printf(b, "\n%*s", indent, "");
	}
	sb_puts(b, ")");
	free(extra.s);
}

char *vt_mod_repr(const struct vt_pk *mod, enum vt_torch_text text)
{
	struct sbuf b = { 0 };
	struct rctx rc = { MAX_PRINTED, text };

	repr_module(&b, mod, 0, 0, &rc);
	if (b.oom) { /* out of memory, or past MAX_PRINTED modules */
		free(b.s);
		return NULL;
	}
	return b.s;
}
