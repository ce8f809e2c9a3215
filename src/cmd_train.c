/* cmd_train.c - vggtl train: fine-tune a model on CIFAR-10 or a PNG folder.
 *
 * Each epoch reseeds torch's generator and vggtl's own (shuffling, crops, flips) from
 * --seed and the epoch number, so resuming from an epoch checkpoint replays exactly what an
 * uninterrupted run would have done (on CPU with the same thread count).
 * With --freeze features and no augmentation, the features of every training image are
 * computed once and the classifier trains on them.
 */
#include "compute.h"
#include "vt_plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
	"usage: vggtl train (FILE | --arch NAME | --resume CKPT) [--data PATH] [-o OUT] [options]\n\n"
	"Fine-tunes the model with SGD or Adam and cross-entropy, then prints the test accuracy.\n"
	"--data takes CIFAR-10 as torchvision downloads it (the folder holding cifar-10-batches-py,\n"
	"or -bin, or their .tar.gz), or an ImageFolder tree of PNGs (PATH/train/<class>/*.png and\n"
	"PATH/test/...); the default is the small sample in data/.";

struct train_opts {
	const char *data, *out, *style, *optimizer, *schedule, *freeze, *normalize, *device;
	const char *ckpt_dir, *resume, *metrics, *plot;
	long long epochs, batch, step_size, threads, limit, size, seed_value;
	int no_augment;
	double lr, momentum, weight_decay, gamma;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void shuffle(int *idx, int n, struct vt_rng *r)
{
	int i;

	for (i = 0; i < n; i++)
		idx[i] = i;
	for (i = n - 1; i > 0; i--) {
		int j = (int)(vt_rng_uniform(r) * (double)(i + 1)), t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
}

static void progress(int tty, int epoch, int epochs, int done, int total, double loss, double acc, double ips,
		     double eta)
{
	if (tty) {
		int width = 24, fill = total ? done * width / total : width, i;
		fprintf(stderr, "\repoch %d/%d [", epoch, epochs);
		for (i = 0; i < width; i++)
			fputc(i < fill ? '#' : '.', stderr);
		fprintf(stderr, "] %d/%d loss %.4f acc %5.1f%% %6.1f img/s ETA %d:%02d ", done, total, loss, 100 * acc, ips,
			(int)eta / 60, (int)eta % 60);
	} else {
		fprintf(stderr, "epoch %d/%d: %d/%d images, loss %.4f, accuracy %.1f%%, %.1f images/s\n", epoch, epochs,
			done, total, loss, 100 * acc, ips);
	}
}

/* Features of every training image through layers [0, features_end), computed once. */
static int cache_features(struct compute *c, const struct vt_dataset *d, const struct vt_transform *t, int batch,
			  float **cache, size_t *per, struct vt_err *err)
{
	int *idx = malloc((size_t)batch * sizeof(int)), i, j, rc = 0;

	*cache = NULL;
	for (i = 0; idx && i < d->n && rc == 0; i += batch) {
		int n = d->n - i < batch ? d->n - i : batch;
		float *f = NULL;
		for (j = 0; j < n; j++)
			idx[j] = i + j;
		rc = vt_net_forward(&c->net, d, idx, n, t, 0, c->net.features_end, &f, per, err);
		if (rc == 0 && !*cache && !(*cache = malloc((size_t)d->n * *per * sizeof(float))))
			rc = vt_err_set(err, VT_ENOMEM, "out of memory for the feature cache");
		if (rc == 0)
			memcpy(*cache + (size_t)i * *per, f, (size_t)n * *per * sizeof(float));
		free(f);
	}
	if (!idx)
		rc = vt_err_set(err, VT_ENOMEM, "out of memory");
	free(idx);
	return rc;
}

static int save_checkpoint(struct compute *c, struct source *s, const struct vt_shim_opt *sopt, const char *dir,
			   int epoch, double loss, double acc, struct vt_err *err)
{
	struct vt_optim_state o;
	char path[4200];
	int rc;

	snprintf(path, sizeof(path), "%s/epoch_%d.pth", dir, epoch);
	if ((rc = vt_net_download(&c->net, &s->model, err)))
		return rc;
	if ((rc = vt_optim_collect(&c->net, &o, sopt, err)) == 0)
		rc = vt_ckpt_save(path, &s->model, s->src, epoch, &o, loss, acc, err);
	vt_optim_state_release(&o);
	return rc;
}

static int run(struct source *s, struct train_opts *a)
{
	struct vt_optim_state resume_state = { 0 };
	int start_epoch = 0;
	struct vt_dataset train = { 0 }, test = { 0 };
	struct vt_transform tt = { 0 }, et = { 0 };
	struct vt_shim_opt sopt = { 0 };
	struct compute c;
	struct vt_err err = { 0 };
	enum vt_schedule sched;
	FILE *metrics = NULL;
	float *cache = NULL, *x = NULL;
	int64_t *y = NULL;
	int *order = NULL, freeze = a->freeze != NULL, cached, rc, e, tty = isatty(2);
	size_t per = 0, in;
	double last_acc = 0, last_loss = 0, *curves = NULL;
	int64_t xs[4];

	if (a->freeze && strcmp(a->freeze, "features") != 0) {
		fprintf(stderr, "vggtl train: --freeze takes 'features'\n");
		return EXIT_USAGE;
	}
	if (strcmp(a->optimizer, "sgd") != 0 && strcmp(a->optimizer, "adam") != 0) {
		fprintf(stderr, "vggtl train: --optimizer is sgd or adam\n");
		return EXIT_USAGE;
	}
	sched = strcmp(a->schedule, "cosine") == 0 ? VT_SCHED_COSINE :
		strcmp(a->schedule, "step") == 0   ? VT_SCHED_STEP :
		strcmp(a->schedule, "none") == 0   ? VT_SCHED_NONE :
						     (enum vt_schedule)-1;
	if ((int)sched < 0 || a->epochs < 1 || a->batch < 1 || a->lr <= 0 || a->limit < 0) {
		fprintf(stderr, "vggtl train: --schedule is cosine, step or none; --epochs, --batch-size and --lr must be positive\n");
		return EXIT_USAGE;
	}
	if ((rc = parse_normalize(a->normalize, &tt)))
		return rc;
	tt.augment = !a->no_augment;
	et = tt;
	et.augment = 0;
	if ((rc = load_data(a->data, "train", (int)a->size, &train)) || (rc = load_data(a->data, "test", (int)a->size, &test)))
		goto out;
	if (a->limit && a->limit < train.n)
		train.n = (int)a->limit;
	if ((rc = compute_open(&c, s, a->device, a->threads, freeze)))
		goto out_c;
	if (c.net.nclasses < train.nclasses)
		fprintf(stderr, "vggtl: warning: the model has %d outputs but the data has %d classes\n", c.net.nclasses,
			train.nclasses);
	sopt.kind = a->optimizer[0] == 'a' ? VT_OPT_ADAM : VT_OPT_SGD;
	sopt.lr = a->lr;
	sopt.momentum = a->momentum;
	sopt.weight_decay = a->weight_decay;
	sopt.beta1 = 0.9;
	sopt.beta2 = 0.999;
	sopt.eps = 1e-8;
	if (c.api.net_optimizer(c.net.h, &sopt)) {
		vt_net_fail(&c.net, "optimizer", &err);
		rc = report(&err);
		goto out_c;
	}
	if (a->resume && (vt_optim_prepare(&c.net, &resume_state, &sopt, &err) ||
			  vt_ckpt_read(&s->pth, &resume_state, &start_epoch, &err) ||
			  vt_optim_restore(&c.net, &resume_state, &err))) {
		vt_err_prefix(&err, "%s", a->resume);
		rc = report(&err);
		goto out_c;
	}
	if (a->resume)
		fprintf(stderr, "vggtl: resuming after epoch %d of %lld\n", start_epoch, a->epochs);
	if (a->metrics && !(metrics = fopen(a->metrics, start_epoch ? "a" : "w"))) {
		fprintf(stderr, "vggtl: cannot open '%s' for metrics\n", a->metrics);
		rc = EXIT_FAIL;
		goto out_c;
	}
	if (a->ckpt_dir && mkdir(a->ckpt_dir, 0777) != 0 && access(a->ckpt_dir, W_OK) != 0) {
		fprintf(stderr, "vggtl: cannot use '%s' for checkpoints\n", a->ckpt_dir);
		rc = EXIT_FAIL;
		goto out_c;
	}
	cached = freeze && !tt.augment;
	if (cached) {
		double t0 = now();
		if (cache_features(&c, &train, &tt, (int)a->batch, &cache, &per, &err)) {
			rc = report(&err);
			goto out_c;
		}
		fprintf(stderr, "vggtl: features of %d images computed once in %.1f s (frozen, no augmentation)\n", train.n,
			now() - t0);
		if (metrics)
			fprintf(metrics, "{\"feature_cache_seconds\": %.3f, \"images\": %d}\n", now() - t0, train.n);
	}
	in = cached ? per : (size_t)3 * (size_t)train.h * (size_t)train.w;
	curves = calloc(4 * (size_t)a->epochs, sizeof(double)); /* train/test loss, train/test accuracy */
	order = malloc((size_t)train.n * sizeof(int));
	x = malloc((size_t)a->batch * in * sizeof(float));
	y = malloc((size_t)a->batch * sizeof(int64_t));
	if (!order || !x || !y || !curves) {
		fprintf(stderr, "vggtl: out of memory\n");
		rc = EXIT_FAIL;
		goto out_c;
	}
	fprintf(stderr, "vggtl: training %s on %s (%d threads): %d images, %d classes, %lld epochs\n", s->label, c.device,
		c.threads, train.n, train.nclasses, a->epochs);
	for (e = start_epoch; e < a->epochs; e++) {
		struct vt_rng r;
		struct vt_eval_result ev;
		double lr = vt_schedule_lr(sched, a->lr, e, (int)a->epochs, (int)a->step_size, a->gamma);
		double t0 = now(), loss_sum = 0, train_seconds;
		int64_t right = 0;
		int i, done = 0, step = 0;

		vt_rng_seed(&r, (uint64_t)a->seed_value * 1000003u + (uint64_t)e);
		c.api.seed((uint64_t)a->seed_value * 1000003u + (uint64_t)e);
		shuffle(order, train.n, &r);
		for (i = 0; i < train.n; i += (int)a->batch, step++) {
			int n = train.n - i < a->batch ? train.n - i : (int)a->batch, j;
			double loss = 0;
			int64_t corr = 0;
			if (cached) {
				for (j = 0; j < n; j++)
					memcpy(x + (size_t)j * per, cache + (size_t)order[i + j] * per, per * sizeof(float));
				/* features halve the size five times (max pooling, rounding down) */
				xs[0] = n;
				xs[2] = train.h / 32 > 0 ? train.h / 32 : 1;
				xs[3] = train.w / 32 > 0 ? train.w / 32 : 1;
				xs[1] = (int64_t)per / (xs[2] * xs[3]);
			} else {
				vt_data_batch(&train, order + i, n, &tt, &r, x);
				xs[0] = n;
				xs[1] = 3;
				xs[2] = train.h;
				xs[3] = train.w;
			}
			for (j = 0; j < n; j++)
				y[j] = train.labels[order[i + j]];
			if (c.api.net_train_step(c.net.h, x, xs, 4, cached ? c.net.features_end : 0, y, lr, &loss, &corr)) {
				vt_net_fail(&c.net, "training step", &err);
				rc = report(&err);
				goto out_c;
			}
			loss_sum += loss * n;
			right += corr;
			done += n;
			if (metrics)
				fprintf(metrics, "{\"epoch\": %d, \"step\": %d, \"loss\": %.6f, \"accuracy\": %.6f, \"images_per_s\": %.2f, \"lr\": %.8g}\n",
					e + 1, step + 1, loss, (double)corr / n, done / (now() - t0), lr);
			if (tty || done == train.n)
				progress(tty, e + 1, (int)a->epochs, done, train.n, loss_sum / done, (double)right / done,
					 done / (now() - t0), (now() - t0) / done * (train.n - done));
		}
		if (tty)
			fputc('\n', stderr);
		train_seconds = now() - t0;
		if (vt_evaluate(&c.net, &test, &et, (int)a->batch, &ev, &err)) {
			rc = report(&err);
			goto out_c;
		}
		last_acc = ev.total ? (double)ev.correct / ev.total : 0;
		last_loss = ev.loss;
		fprintf(stderr, "epoch %d/%lld: train loss %.4f, accuracy %.1f%%; test loss %.4f, accuracy %.1f%% (%lld images)\n",
			e + 1, a->epochs, loss_sum / train.n, 100.0 * right / train.n, ev.loss, 100 * last_acc,
			(long long)ev.total);
		if (metrics) {
			fprintf(metrics, "{\"epoch\": %d, \"train_loss\": %.6f, \"train_accuracy\": %.6f, \"test_loss\": %.6f, \"test_accuracy\": %.6f, \"train_seconds\": %.3f, \"images_per_s\": %.2f, \"seconds\": %.3f}\n",
				e + 1, loss_sum / train.n, (double)right / train.n, ev.loss, last_acc, train_seconds,
				train.n / train_seconds, now() - t0);
			fflush(metrics);
		}
		vt_eval_result_release(&ev);
		if (a->plot) {
			int k = e - start_epoch, m = (int)(a->epochs - start_epoch);
			curves[k] = loss_sum / train.n;
			curves[m + k] = last_loss;
			curves[2 * m + k] = (double)right / train.n;
			curves[3 * m + k] = last_acc;
			if (vt_plot_png(a->plot, curves, curves + m, curves + 2 * m, curves + 3 * m, k + 1, &err)) {
				rc = report(&err);
				goto out_c;
			}
		}
		if (a->ckpt_dir && save_checkpoint(&c, s, &sopt, a->ckpt_dir, e + 1, last_loss, last_acc, &err)) {
			rc = report(&err);
			goto out_c;
		}
	}
	if (a->out) {
		if (vt_net_download(&c.net, &s->model, &err)) {
			rc = report(&err);
			goto out_c;
		}
		if ((rc = write_model(s, a->out, strcmp(a->style, "weights") != 0, NULL)))
			goto out_c;
	}
	printf("test accuracy %.4f (loss %.4f)\n", last_acc, last_loss);
	rc = EXIT_OK;
out_c:
	compute_close(&c);
out:
	vt_optim_state_release(&resume_state);
	if (metrics)
		fclose(metrics);
	free(cache);
	free(curves);
	free(order);
	free(x);
	free(y);
	vt_data_release(&train);
	vt_data_release(&test);
	return rc;
}

int cmd_train(int argc, char **argv)
{
	struct source s = { 0 };
	struct train_opts a = { 0 };
	int nargs = 0, rc;
	const struct option opts[] = {
		{ OPT_STRING, "data", 0, &a.data, NULL, "PATH", "CIFAR-10 or PNG folder (default: the sample in data/)" },
		{ OPT_STRING, "output", 'o', &a.out, NULL, "OUT", "write the trained model here" },
		{ OPT_STRING, "style", 0, &a.style, NULL, "full|weights", "form of OUT (default full)" },
		{ OPT_INT, "epochs", 0, &a.epochs, NULL, "N", "epochs (default 5)" },
		{ OPT_INT, "batch-size", 'b', &a.batch, NULL, "N", "batch size (default 64)" },
		{ OPT_FLOAT, "lr", 0, &a.lr, NULL, "LR", "learning rate (default 0.01)" },
		{ OPT_FLOAT, "momentum", 0, &a.momentum, NULL, "M", "SGD momentum (default 0.9)" },
		{ OPT_FLOAT, "weight-decay", 0, &a.weight_decay, NULL, "WD", "weight decay (default 5e-4)" },
		{ OPT_STRING, "optimizer", 0, &a.optimizer, NULL, "sgd|adam", "optimizer (default sgd)" },
		{ OPT_STRING, "schedule", 0, &a.schedule, NULL, "cosine|step|none", "per-epoch lr schedule (default cosine)" },
		{ OPT_INT, "step-size", 0, &a.step_size, NULL, "N", "StepLR step in epochs (default 30)" },
		{ OPT_FLOAT, "gamma", 0, &a.gamma, NULL, "G", "StepLR factor (default 0.1)" },
		{ OPT_STRING, "freeze", 0, &a.freeze, NULL, "features", "train the classifier only" },
		{ OPT_FLAG, "no-augment", 0, &a.no_augment, NULL, NULL, "no random crop / flip" },
		{ OPT_STRING, "normalize", 0, &a.normalize, NULL, "NAME", "cifar10 (default), imagenet or none" },
		{ OPT_INT, "image-size", 0, &a.size, NULL, "N", "PNG folders: resize to N x N (default 32)" },
		{ OPT_INT, "limit", 0, &a.limit, NULL, "N", "train on the first N images only" },
		{ OPT_STRING, "checkpoint-dir", 0, &a.ckpt_dir, NULL, "DIR", "write DIR/epoch_N.pth after each epoch" },
		{ OPT_STRING, "resume", 0, &a.resume, NULL, "CKPT", "continue from an epoch checkpoint" },
		{ OPT_STRING, "metrics", 0, &a.metrics, NULL, "FILE", "append JSON lines of metrics" },
		{ OPT_STRING, "plot", 0, &a.plot, NULL, "FILE.png", "draw loss and accuracy curves" },
		COMPUTE_OPTIONS(&a.device, &a.threads),
		SOURCE_OPTIONS(&s),
		{ OPT_END, NULL, 0, NULL, NULL, NULL, NULL },
	};

	a.style = "full";
	a.optimizer = "sgd";
	a.schedule = "cosine";
	a.normalize = "cifar10";
	a.device = "auto";
	a.epochs = 5;
	a.batch = 64;
	a.step_size = 30;
	a.size = 32;
	a.lr = 0.01;
	a.momentum = 0.9;
	a.weight_decay = 5e-4;
	a.gamma = 0.1;
	rc = parse_options(argc, argv, opts, usage, &nargs);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	a.seed_value = s.seed;
	if (a.resume) {
		char *args[1] = { (char *)a.resume };
		if (nargs || s.arch) {
			fprintf(stderr, "vggtl train: --resume CKPT replaces the model source\n");
			return EXIT_USAGE;
		}
		rc = source_open(&s, 1, args, 1);
	} else {
		rc = source_open(&s, nargs, argv, 1);
	}
	if (rc == EXIT_OK)
		rc = run(&s, &a);
	source_close(&s);
	return rc;
}
