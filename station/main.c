/*
 * mintline-station: the station program (issuance lines, verification
 * desks) and the reader host of the ID-card handshake.
 *
 *	mintline-station [-v] COMMAND [OPTIONS]	(COMMAND --help)
 *
 * One row per subcommand in st_cmds[]; each command parses its own
 * options and returns its documented exit code.
 */
#include <stdio.h>
#include <string.h>

#include "ml_err.h"
#include "ml_log.h"
#include "st.h"
#include "cmd_idread.h"
#include "cmd_note.h"

static const struct st_cmd {
	const char	*name;
	int		(*run)(const struct st_opts *, int, char **);
	const char	*help;
} st_cmds[] = {
	{ "handshake",	cmd_handshake,	"run handshake A or B with the server and keep the channel" },
	{ "ping",	cmd_handshake,	"same as handshake" },
	{ "id-read",	cmd_idread,	"read the ID card in the field (ID-1..ID-13)" },
	{ "reader",	cmd_reader,	"run as a reader: watch the card slot, answer read commands" },
	{ "provision",	cmd_provision,	"personalise blank note chips on the line" },	/* BN-4 */
	{ "issue",	cmd_issue,	"write authorised feature data to note chips" },	/* BN-2..BN-6 */
	{ "verify",	cmd_verify,	"read notes and print a verdict" },	/* BN-8 */
	{ "enroll",	cmd_enroll,	"enrol personalised note chips with the server" },	/* OP-4 */
	{ "rotate-issuer", cmd_rotate_issuer, "add or retire issuer keys on unwritten note chips" },	/* BN-4 */
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: mintline-station [-v] COMMAND [OPTIONS]  "
	    "(COMMAND --help)\n\n");
	for (i = 0; i < ML_NELEM(st_cmds); i++) {
		fprintf(f, "  %-10s %s\n", st_cmds[i].name, st_cmds[i].help);
	}
}

int
main(int argc, char **argv)
{
	struct st_opts so = { 0 };
	size_t i;

	ml_log_set_ident("mintline-station");
	while (argc > 1 && strcmp(argv[1], "-v") == 0) {
		so.verbose++;
		argc--;
		argv++;
	}
	if (so.verbose > 0) {
		ml_log_set_level(so.verbose > 1 ? ML_LOG_DEBUG : ML_LOG_INFO);
	}
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
			return st_cmds[i].run(&so, argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "mintline-station: unknown command %s\n", argv[1]);
	usage(stderr);
	return 1;
}
