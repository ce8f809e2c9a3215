/* cmd_train.c - vggtl train: fine-tune a model on CIFAR-10 or PNG/JPEG images (folders or archives).
 *
 * Options, progress, metrics, the chart and checkpoints; the run itself is vt_fit
 * (src/fit.c), which also says how resuming replays a run and how ranks share the work.
 * Under torchrun (or any launcher that sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)
 * every rank trains and only rank 0 prints and writes.
 */
#include "compute.h"
#include "vt_dist.h"
#include "vt_plot.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
	"usage: vggtl train (FILE | --arch NAME | --resume CKPT) [--data PATH] [-o OUT] [options]\n\n"
	"Fine-tunes the model with SGD or Adam and cross-entropy, then prints the test accuracy.\n"
	"--data takes CIFAR-10 as torchvision downloads it (the folder holding cifar-10-batches-py,\n"
	"or -bin, or their .tar.gz), or an ImageFolder tree of PNG and JPEG images\n"
	"(PATH/train/<class>/*.jpg|png and PATH/test/...), also inside a .zip, .tar, .tar.gz, .tgz\n"
	"or .tar.xz; the default is the small sample in data/.\n"
	"Under torchrun --no_python (or any launcher that sets RANK, WORLD_SIZE, MASTER_ADDR and\n"
	"MASTER_PORT) every rank trains on its share of the data, gradients are averaged over c10d,\n"
	"and rank 0 prints and writes; --batch-size is per rank.";

struct train_opts {
	const char *data, *out, *style, *optimizer, *schedule, *freeze, *normalize, *device;
	const char *ckpt_dir, *resume, *metrics, *plot, *add_prefix, *dist_backend, *precision, *loss_scale;
	double dist_timeout, loss_scale_init;
	long long loss_scale_interval;
	long long epochs, batch, step_size, threads, limit, size, seed_value;
	int no_augment;
	double lr, momentum, weight_decay, gamma;
};

struct train_run {
	const struct train_opts *a;
	struct compute *c;
	struct source *s;
	const struct vt_shim_opt *sopt;
	FILE *metrics;
	double *curves; /* train/test loss, train/test accuracy per epoch of this run */
	int start_epoch, tty;
	int writer;     /* rank 0: prints and writes files; the other ranks only train */
	double last_acc, last_loss;
};

static void progress(int tty, const struct vt_fit_progress *p)
{
	double ips = p->done / p->seconds, eta = p->seconds / p->done * (p->total - p->done);

	if (tty) {
		int width = 24, fill = p->total ? p->done * width / p->total : width, i;
		fprintf(stderr, "\repoch %d/%d [", p->epoch, p->epochs);
		for (i = 0; i < width; i++)
			fputc(i < fill ? '#' : '.', stderr);
		fprintf(stderr, "] %d/%d loss %.4f acc %5.1f%% %6.1f img/s ETA %d:%02d ", p->done, p->total,
			p->loss_sum / p->done, 100.0 * (double)p->right / p->done, ips, (int)eta / 60, (int)eta % 60);
		if (p->done == p->total)
			fputc('\n', stderr);
	} else if (p->done == p->total) {
		fprintf(stderr, "epoch %d/%d: %d/%d images, loss %.4f, accuracy %.1f%%, %.1f images/s\n", p->epoch,
			p->epochs, p->done, p->total, p->loss_sum / p->done, 100.0 * (double)p->right / p->done, ips);
	}
}

static void on_cached(void *ctx, int images, double seconds)
{
	struct train_run *t = ctx;

	fprintf(stderr, "vggtl: features of %d images computed once in %.1f s (frozen, no augmentation)\n", images,
		seconds);
	if (t->metrics)
		fprintf(t->metrics, "{\"feature_cache_seconds\": %.3f, \"images\": %d}\n", seconds, images);
}

static void on_step(void *ctx, const struct vt_fit_progress *p)
{
	struct train_run *t = ctx;

	if (t->metrics)
		fprintf(t->metrics, "{\"epoch\": %d, \"step\": %d, \"loss\": %.6f, \"accuracy\": %.6f, \"images_per_s\": %.2f, \"lr\": %.8g}\n",
			p->epoch, p->step, p->loss, (double)p->correct / p->n, p->done / p->seconds, p->lr);
	progress(t->tty, p);
}

static int save_checkpoint(struct train_run *t, int epoch, double loss, double acc, struct vt_err *err)
{
	struct vt_optim_state o;
	char path[4200];
	int rc;

	snprintf(path, sizeof(path), "%s/epoch_%d.pth", t->a->ckpt_dir, epoch);
	if ((rc = vt_net_download(&t->c->net, &t->s->model, err)))
		return rc;
	if ((rc = vt_optim_collect(&t->c->net, &o, t->sopt, err)) == 0)
		rc = vt_ckpt_save(path, &t->s->model, t->s->src, epoch, &o, loss, acc, t->a->add_prefix, err);
	vt_optim_state_release(&o);
	return rc;
}

static int on_epoch(void *ctx, const struct vt_fit_epoch *e, struct vt_err *err)
{
	struct train_run *t = ctx;
	const struct train_opts *a = t->a;
	int rc;

	t->last_acc = e->test_accuracy;
	t->last_loss = e->test_loss;
	if (!t->writer)
		return 0;
	fprintf(stderr, "epoch %d/%d: train loss %.4f, accuracy %.1f%%; test loss %.4f, accuracy %.1f%% (%lld images)\n",
		e->epoch, e->epochs, e->train_loss, 100 * e->train_accuracy, e->test_loss, 100 * e->test_accuracy,
		(long long)e->test_images);
	if (t->metrics) {
		fprintf(t->metrics, "{\"epoch\": %d, \"train_loss\": %.6f, \"train_accuracy\": %.6f, \"test_loss\": %.6f, \"test_accuracy\": %.6f, \"train_seconds\": %.3f, \"images_per_s\": %.2f, \"seconds\": %.3f}\n",
			e->epoch, e->train_loss, e->train_accuracy, e->test_loss, e->test_accuracy, e->train_seconds,
			(double)e->train_images / e->train_seconds, e->seconds);
		fflush(t->metrics);
	}
	if (a->plot) {
		int k = e->epoch - 1 - t->start_epoch, m = e->epochs - t->start_epoch;
		t->curves[k] = e->train_loss;
		t->curves[m + k] = e->test_loss;
		t->curves[2 * m + k] = e->train_accuracy;
		t->curves[3 * m + k] = e->test_accuracy;
		if ((rc = vt_plot_png(a->plot, t->curves, t->curves + m, t->curves + 2 * m, t->curves + 3 * m, k + 1, err)))
			return rc;
	}
	if (a->ckpt_dir)
		return save_checkpoint(t, e->epoch, e->test_loss, e->test_accuracy, err);
	return 0;
}

static int check_options(const struct train_opts *a, enum vt_schedule *sched)
{
	if (a->freeze && strcmp(a->freeze, "features") != 0) {
		fprintf(stderr, "vggtl train: --freeze takes 'features'\n");
		return EXIT_USAGE;
	}
	if (strcmp(a->optimizer, "sgd") != 0 && strcmp(a->optimizer, "adam") != 0) {
		fprintf(stderr, "vggtl train: --optimizer is sgd or adam\n");
		return EXIT_USAGE;
	}
	*sched = strcmp(a->schedule, "cosine") == 0 ? VT_SCHED_COSINE :
		 strcmp(a->schedule, "step") == 0   ? VT_SCHED_STEP :
		 strcmp(a->schedule, "none") == 0   ? VT_SCHED_NONE :
						      (enum vt_schedule)-1;
	if ((int)*sched < 0 || a->epochs < 1 || a->batch < 1 || a->lr <= 0 || a->limit < 0) {
		fprintf(stderr, "vggtl train: --schedule is cosine, step or none; --epochs, --batch-size and --lr must be positive\n");
		return EXIT_USAGE;
	}
	if (strcmp(a->loss_scale, "dynamic") != 0 && strcmp(a->loss_scale, "none") != 0) {
		fprintf(stderr, "vggtl train: --loss-scale is dynamic or none\n");
		return EXIT_USAGE;
	}
	if (strcmp(a->precision, "fp16") == 0 && strcmp(a->loss_scale, "none") == 0) {
		fprintf(stderr, "vggtl train: --precision fp16 needs --loss-scale dynamic: fp16 gradients underflow "
				"without it\n");
		return EXIT_USAGE;
	}
	if (!(a->loss_scale_init > 0) || a->loss_scale_interval < 1) {
		fprintf(stderr, "vggtl train: --loss-scale-init must be positive (inf allowed) and --loss-scale-interval "
				"at least 1\n");
		return EXIT_USAGE;
	}
	if (a->dist_timeout <= 0) {
		fprintf(stderr, "vggtl train: --dist-timeout wants a positive number of seconds\n");
		return EXIT_USAGE;
	}
	if (a->add_prefix && a->out && strcmp(a->style, "weights") != 0) {
		fprintf(stderr, "vggtl train: --add-prefix names state_dict keys: use it with --style weights (a whole "
				"model has no key prefix)\n");
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static int run(struct source *s, struct train_opts *a)
{
	struct vt_optim_state resume_state = { 0 };
	struct vt_dataset train = { 0 }, test = { 0 };
	struct vt_transform tt = { 0 }, et = { 0 };
	struct vt_shim_opt sopt = { 0 };
	struct vt_fit_plan plan = { 0 };
	struct vt_fit_hooks hooks = { 0 };
	struct train_run t = { 0 };
	struct vt_dist dist;
	struct compute c = { 0 };
	struct vt_err err = { 0 };
	enum vt_schedule sched;
	int rc;

	if ((rc = check_options(a, &sched)) || (rc = parse_normalize(a->normalize, &tt)))
		return rc;
	if (vt_dist_from_env(&dist, &err))
		return report(&err);
	t.writer = dist.rank == 0;
	tt.augment = !a->no_augment;
	et = tt;
	et.augment = 0;
	if ((rc = load_data(a->data, "train", (int)a->size, &train)) || (rc = load_data(a->data, "test", (int)a->size, &test)))
		goto out;
	if (a->limit && a->limit < train.n)
		train.n = (int)a->limit;
	if ((rc = compute_open(&c, s, a->device, a->threads, a->freeze != NULL, a->precision)))
		goto out_c;
	if (c.net.nclasses < train.nclasses && t.writer)
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
			  vt_ckpt_read(&s->pth, &resume_state, &plan.start_epoch, &err) ||
			  vt_optim_restore(&c.net, &resume_state, &err))) {
		vt_err_prefix(&err, "%s", a->resume);
		rc = report(&err);
		goto out_c;
	}
	if (strcmp(a->loss_scale, "dynamic") == 0) {
		/* GradScaler(init_scale, growth_factor=2, backoff_factor=0.5, growth_interval); a
		 * checkpoint's scaler, when it has one, continues instead */
		struct vt_shim_scaler sc = { 1, a->loss_scale_init, 2.0, 0.5, a->loss_scale_interval, 0, 0 };
		if (a->resume && resume_state.scaler.on)
			sc = resume_state.scaler;
		if (c.api.net_scaler(c.net.h, &sc, NULL)) {
			vt_net_fail(&c.net, "loss scaler", &err);
			rc = report(&err);
			goto out_c;
		}
	}
	if (vt_dist_start(&dist, &c.net, a->dist_backend, a->dist_timeout, &err)) {
		rc = report(&err);
		goto out_c;
	}
	if (a->resume && t.writer)
		fprintf(stderr, "vggtl: resuming after epoch %d of %lld\n", plan.start_epoch, a->epochs);
	if (t.writer && a->metrics && !(t.metrics = fopen(a->metrics, plan.start_epoch ? "a" : "w"))) {
		fprintf(stderr, "vggtl: cannot open '%s' for metrics\n", a->metrics);
		rc = EXIT_FAIL;
		goto out_c;
	}
	if (t.writer && a->ckpt_dir && mkdir(a->ckpt_dir, 0777) != 0 && access(a->ckpt_dir, W_OK) != 0) {
		fprintf(stderr, "vggtl: cannot use '%s' for checkpoints\n", a->ckpt_dir);
		rc = EXIT_FAIL;
		goto out_c;
	}
	if (!(t.curves = calloc(4 * (size_t)a->epochs, sizeof(double)))) {
		fprintf(stderr, "vggtl: out of memory\n");
		rc = EXIT_FAIL;
		goto out_c;
	}
	plan.train = &train;
	plan.test = &test;
	plan.train_t = &tt;
	plan.eval_t = &et;
	plan.schedule = sched;
	plan.lr = a->lr;
	plan.gamma = a->gamma;
	plan.epochs = (int)a->epochs;
	plan.step_size = (int)a->step_size;
	plan.batch = (int)a->batch;
	plan.seed = (uint64_t)a->seed_value;
	plan.cache_features = a->freeze && !tt.augment;
	plan.rank = dist.rank;
	plan.world = dist.world;
	t.a = a;
	t.c = &c;
	t.s = s;
	t.sopt = &sopt;
	t.start_epoch = plan.start_epoch;
	t.tty = isatty(2);
	hooks.ctx = &t;
	hooks.features_cached = t.writer ? on_cached : NULL;
	hooks.step = t.writer ? on_step : NULL;
	hooks.epoch = on_epoch;
	if (t.writer && dist.world > 1)
		fprintf(stderr, "vggtl: training %s on %s, rank 0 of %d (%d threads each on this machine): %d images, %d classes, %lld epochs\n",
			s->label, c.device, dist.world, c.threads, train.n, train.nclasses, a->epochs);
	else if (t.writer)
		fprintf(stderr, "vggtl: training %s on %s (%d threads): %d images, %d classes, %lld epochs\n", s->label,
			c.device, c.threads, train.n, train.nclasses, a->epochs);
	if (vt_fit(&c.net, &plan, &hooks, &err)) {
		if (dist.world > 1)
			vt_err_prefix(&err, "rank %d of %d", dist.rank, dist.world);
		rc = report(&err);
		goto out_c;
	}
	if (t.writer && a->out) {
		if (vt_net_download(&c.net, &s->model, &err)) {
			rc = report(&err);
			goto out_c;
		}
		if ((rc = write_model(s, a->out, strcmp(a->style, "weights") != 0, a->add_prefix)))
			goto out_c;
	}
	if (t.writer && strcmp(a->loss_scale, "dynamic") == 0) {
		struct vt_shim_scaler sc = { 0 };
		if (c.api.net_scaler(c.net.h, NULL, &sc) == 0)
			fprintf(stderr, "vggtl: loss scaling: %lld steps skipped for inf/NaN gradients, scale now %g\n",
				(long long)sc.skipped, sc.scale);
	}
	if (t.writer)
		printf("test accuracy %.4f (loss %.4f)\n", t.last_acc, t.last_loss);
	rc = EXIT_OK;
out_c:
	vt_dist_stop(&dist, &c.api);
	compute_close(&c);
out:
	vt_optim_state_release(&resume_state);
	if (t.metrics)
		fclose(t.metrics);
	free(t.curves);
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
		{ OPT_STRING, "data", 0, &a.data, NULL, "PATH", "CIFAR-10, image folder or archive (default: the sample in data/)" },
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
		{ OPT_INT, "image-size", 0, &a.size, NULL, "N", "image folders: resize to N x N (default 32)" },
		{ OPT_INT, "limit", 0, &a.limit, NULL, "N", "train on the first N images only" },
		{ OPT_STRING, "checkpoint-dir", 0, &a.ckpt_dir, NULL, "DIR", "write DIR/epoch_N.pth after each epoch" },
		{ OPT_STRING, "resume", 0, &a.resume, NULL, "CKPT", "continue from an epoch checkpoint" },
		{ OPT_STRING, "metrics", 0, &a.metrics, NULL, "FILE", "append JSON lines of metrics" },
		{ OPT_STRING, "plot", 0, &a.plot, NULL, "FILE.png", "draw loss and accuracy curves" },
		{ OPT_STRING, "add-prefix", 0, &a.add_prefix, NULL, "PREFIX", "prefix checkpoint and weights keys ('module.' as DDP saves them)" },
		{ OPT_STRING, "dist-backend", 0, &a.dist_backend, NULL, "NAME", "under torchrun: auto (default), gloo or nccl" },
		{ OPT_FLOAT, "dist-timeout", 0, &a.dist_timeout, NULL, "S", "under torchrun: seconds to wait for a peer (default 1800)" },
		{ OPT_STRING, "loss-scale", 0, &a.loss_scale, NULL, "dynamic|none",
		  "GradScaler's dynamic loss scaling (default: dynamic with --precision fp16, else none)" },
		{ OPT_FLOAT, "loss-scale-init", 0, &a.loss_scale_init, NULL, "S", "its initial scale (default 65536)" },
		{ OPT_INT, "loss-scale-interval", 0, &a.loss_scale_interval, NULL, "N",
		  "clean steps before the scale doubles (default 2000)" },
		COMPUTE_OPTIONS(&a.device, &a.threads, &a.precision),
		SOURCE_OPTIONS(&s),
		{ OPT_END, NULL, 0, NULL, NULL, NULL, NULL },
	};

	a.style = "full";
	a.dist_backend = "auto";
	a.precision = "fp32";
	a.dist_timeout = 1800;
	a.loss_scale_init = 65536;
	a.loss_scale_interval = 2000;
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
	if (!a.loss_scale)
		a.loss_scale = strcmp(a.precision, "fp16") == 0 ? "dynamic" : "none";
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
