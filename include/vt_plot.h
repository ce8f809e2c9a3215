/* vt_plot.h - training curves as a PNG: loss on the left, accuracy on the right, train in
 * blue and test in orange, one point per epoch. */
#ifndef VT_PLOT_H
#define VT_PLOT_H

#include "vt_err.h"

int vt_plot_png(const char *path, const double *train_loss, const double *test_loss, const double *train_acc,
		const double *test_acc, int n, struct vt_err *err);

#endif
