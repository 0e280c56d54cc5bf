/*
 * The station's banknote subcommands (BN-1..BN-8).  Each parses its own
 * options (getopt_long into a per-command struct; no globals) after the
 * subcommand name and returns its documented exit code.
 *
 * station/main.c's subcommand table rows:
 *	{ "provision",	cmd_provision,	"personalise blank note chips on the line" },
 *	{ "issue",	cmd_issue,	"write authorised feature data to note chips" },
 *	{ "verify",	cmd_verify,	"read notes and print a verdict" },
 *	{ "enroll",	cmd_enroll,	"enrol personalised chips with the server" },
 *	{ "rotate-issuer", cmd_rotate_issuer, "add or retire issuer keys ..." },
 */
#ifndef ST_CMD_NOTE_H
#define ST_CMD_NOTE_H

#include <stdbool.h>
#include <stdint.h>

struct st_opts;		/* station/main.c's common options; unused here */

int	 cmd_provision(const struct st_opts *so, int argc, char **argv);
int	 cmd_issue(const struct st_opts *so, int argc, char **argv);
int	 cmd_verify(const struct st_opts *so, int argc, char **argv);
int	 cmd_enroll(const struct st_opts *so, int argc, char **argv);
int	 cmd_rotate_issuer(const struct st_opts *so, int argc, char **argv);

/* Exit codes shared by the three commands. */
#define ST_EXIT_OK		0	/* done; verify: every note genuine */
#define ST_EXIT_ERROR		1	/* usage, I/O, key or server trouble */
#define ST_EXIT_PARTIAL		2	/* issue/provision: some notes or chips
					 * were not done (reported) */
#define ST_EXIT_COUNTERFEIT	3	/* verify: at least one COUNTERFEIT */


struct chipcmd;
struct note_uplink;
struct note_reply;

/*
 * OP-4: enrol the locked chip on cc (serial chip, key pub read from it)
 * with the server over up; with prove, the chip first proves it holds the
 * key (INTERNAL AUTHENTICATE).  0 with the server's answer in *ret;
 * ML_ERR_AUTH when the proof fails; ML_ERR_IO when the server is away.
 */
int	 note_enrol_chip(struct chipcmd *cc, struct note_uplink *up,
    const char *chip, const uint8_t pub[static 65], bool prove,
    struct note_reply *ret);

#endif
