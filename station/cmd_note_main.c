/*
 * mintline-station (issuance subcommands only): the stand-in front until
 * station/main.c (issue 4) carries these rows in its subcommand table.
 *
 * Exit codes: those of the subcommand (station/cmd_note.h); 1 for usage.
 */
#include <stdio.h>
#include <string.h>

#include "cmd_note.h"
#include "ml_err.h"
#include "ml_log.h"

static const struct st_cmd {
	const char	*name;
	int		(*run)(const struct st_opts *, int, char **);
	const char	*help;
} st_cmds[] = {
	{ "provision",	cmd_provision,	"personalise blank note chips on the line" },
	{ "issue",	cmd_issue,	"write authorised feature data to note chips" },
	{ "verify",	cmd_verify,	"read notes and print a verdict" },
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: mintline-station COMMAND [OPTIONS]  (COMMAND --help)\n\n");
	for (i = 0; i < ML_NELEM(st_cmds); i++) {
		fprintf(f, "  %-10s %s\n", st_cmds[i].name, st_cmds[i].help);
	}
}

int
main(int argc, char **argv)
{
	size_t i;

	ml_log_set_ident("mintline-station");
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	for (i = 0; i < ML_NELEM(st_cmds); i++) {
		if (strcmp(argv[1], st_cmds[i].name) == 0) {
			return st_cmds[i].run(NULL, argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "mintline-station: unknown command %s\n", argv[1]);
	usage(stderr);
	return 1;
}
