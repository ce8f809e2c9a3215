/* main.c - vggtl's entry point: one table of commands, dispatched by name. */
#include "cmd.h"

#include <signal.h>
#include <string.h>

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
} commands[] = {
	{ "load", cmd_load, "print a model as Python's print(model) does; list its tensors" },
	{ "extend", cmd_extend, "add a Linear layer to the classifier, or replace the last one" },
	{ "save-full", cmd_save_full, "write the whole-model form (torch.save(model))" },
	{ "save-weights", cmd_save_weights, "write the state_dict form (torch.save(model.state_dict()))" },
	{ "train", cmd_train, "fine-tune on CIFAR-10 or a PNG folder (libtorch, CPU or CUDA)" },
	{ "eval", cmd_eval, "loss, accuracy and per-class accuracy on a test set" },
	{ "predict", cmd_predict, "top classes of PNG images" },
	{ "verify", cmd_verify, "check every CRC and every tensor's bounds in a .pth file" },
	{ "scan", cmd_scan, "list every global and call a file's pickles hold; flag the dangerous" },
};

static void help(FILE *f)
{
	size_t i;

	fprintf(f, "usage: vggtl <command> [options]\n\n"
		   "Transfer learning for torchvision's VGG networks, from the shell, without Python.\n\n"
		   "Commands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "    %-14s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nA model is a torch.save FILE (whole model or state_dict, zip or legacy) or\n"
		   "--arch NAME [--seed N] [--pretrained[=PATH]].  load, save-weights, save-full,\n"
		   "verify and scan read any model of any class; the others need a VGG.\n"
		   "'vggtl <command> -h' tells more.\n"
		   "Exit status: 0 success, 1 failure (bad file or data), 2 usage error.\n");
}

int main(int argc, char **argv)
{
	size_t i;

	/* a file-size limit (ulimit -f) must give a write error and a clean exit, not a kill */
	signal(SIGXFSZ, SIG_IGN);
	if (argc < 2) {
		help(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		if (argc > 2)
			for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
				if (strcmp(argv[2], commands[i].name) == 0) {
					char *sub[] = { argv[2], (char *)"-h", NULL };
					return commands[i].fn(2, sub);
				}
		help(stdout);
		return EXIT_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "vggtl: '%s' is not a command; see 'vggtl help'\n", argv[1]);
	return EXIT_USAGE;
}
