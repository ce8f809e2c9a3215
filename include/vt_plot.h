/* vt_plot.h - training curves as a PNG (900x420, RGB): a title, loss on the left and
 * accuracy on the right with their axis names, "epoch" under each x axis, train in blue and
 * test in orange with a legend naming them, a marker on every epoch. */
#ifndef VT_PLOT_H
#define VT_PLOT_H

#include "vt_err.h"

int vt_plot_png(const char *path, const double *train_loss, const double *test_loss, const double *train_acc,
		const double *test_acc, int n, struct vt_err *err);

/* The chart's 5x7 font: seven rows of 5 bits (leftmost pixel in bit 4) for ch, or NULL for
 * a character it lacks.  Text is drawn at twice that size, 12 pixels a character. */
const unsigned char *vt_plot_glyph(char ch);

#endif
