/*
 * The station as an ID-card reader host (ID-1, ID-6..ID-13):
 *
 *	mintline-station id-read [OPTIONS]	one read, then exit
 *	mintline-station reader [OPTIONS]	long-running: watch the card
 *						slot, answer read commands
 *						from stdin or a UNIX socket
 *
 * station/main.c's subcommand table rows:
 *	{ "id-read",	cmd_idread,	"read the ID card in the field (ID-1..ID-13)" },
 *	{ "reader",	cmd_reader,	"run as a reader: watch the card slot, answer read commands" },
 *
 * Both parse their own options (getopt_long into struct st_idr_opts; no
 * globals).  docs/idcard.md and man/mintline-station.1 describe them.
 */
#ifndef ST_CMD_IDREAD_H
#define ST_CMD_IDREAD_H

#include <stdbool.h>
#include <stdint.h>

#include "idr_client.h"
#include "idr_reader.h"

struct st_opts;		/* station/main.c's common options; unused here */

int	 cmd_idread(const struct st_opts *so, int argc, char **argv);
int	 cmd_reader(const struct st_opts *so, int argc, char **argv);

/* Exit codes (id-read; reader exits 0 on a clean shutdown, 1 on error). */
#define IDR_EXIT_OK		0	/* information printed */
#define IDR_EXIT_ERROR		1	/* I/O, chip, key or server trouble */
#define IDR_EXIT_USAGE		2
#define IDR_EXIT_NO_CARD	3	/* no card, or it left during the read */
#define IDR_EXIT_UNREADABLE	4	/* the SAM cannot decrypt this card */
#define IDR_EXIT_UPLOAD		5	/* upload failed (a packet never
					 * arrived, deadline, limits) */

/* ---- shared by the two commands (cmd_idread.c) ---- */

struct st_idr_opts {
	const char		*link;		/* chip link spec */
	struct idr_reader_cfg	 rc;
	const char		*pin_source;
	const char		*so_pin_source;
	const char		*server;	/* HOST:PORT (test builds: or
						 * loopback:SAMSPEC) */
	const char		*ca;
	const char		*cert;
	const char		*serial;	/* default: the chip's serial */
	const char		*key;		/* pkcs11: URI of the reader key
						 * (default: chip commands) */
	const char		*module;	/* PKCS#11 module for key */
	int			 flow;		/* HS_FLOW_A / HS_FLOW_B */
	bool			 json;
	const char		*photo;
	int			 wait_ms;	/* id-read: wait for a card */
	const char		*socket;	/* reader: UNIX socket path */
	bool			 verbose;
	struct idr_faults	 faults;	/* --inject-* (test builds) */
	int			 remove_after;	/* --inject-remove-after */
};

/* The live state of a reader host: link, reader, server connection. */
struct st_idr;

/* Parse argv (after the subcommand name).  Returns 0, IDR_EXIT_USAGE, or
 * -1 for --help (printed). */
int	 st_idr_parse(const char *cmd, int argc, char **argv,
    struct st_idr_opts *ret);
/* Open the link, the reader chip (log in) and the server side. */
ML_MUST_CHECK int st_idr_open(const struct st_idr_opts *o,
    struct st_idr **ret);
/* Shutdown: CACHE CLEAR 0 (ID-12), close everything.  NULL-safe. */
void	 st_idr_close(struct st_idr *s);
struct idr_reader *st_idr_reader(struct st_idr *s);
struct chiplink	*st_idr_link(struct st_idr *s);
const struct st_idr_opts *st_idr_options(const struct st_idr *s);
/* One read; prints the information (text/JSON, photo) to out. */
ML_MUST_CHECK int st_idr_read(struct st_idr *s, FILE *out,
    struct idr_read_info *ret_ri);
/* ML_ERR_* -> IDR_EXIT_*. */
int	 st_idr_exit_code(int r);
/* A one-line explanation of a read error for the terminal. */
const char *st_idr_explain(int r);

#endif
