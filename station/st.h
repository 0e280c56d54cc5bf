/*
 * mintline-station: common options, the subcommand signature, and the
 * link to mintline-server (handshake A or B + channel) that subcommands
 * share.
 */
#ifndef ST_H
#define ST_H

#include <getopt.h>
#include <stdbool.h>

#include "hs.h"
#include "hs_api.h"
#include "key_p11.h"

/* Options common to every subcommand (before the subcommand name). */
struct st_opts {
	int		 verbose;
};

/* How to reach and authenticate to the server. */
struct st_conn {
	char		 server[128];	/* host:port */
	enum hs_flow	 flow;		/* A (default) or B */
	enum hs_kind	 kind;		/* reader (default) or station */
	char		 ca[512];	/* CA root (PEM/DER) */
	char		 crl[512];	/* optional CRL for the server cert */
	char		 cert[512];	/* our certificate chain (PEM) */
	char		 key[1024];	/* pkcs11: URI of our private key */
	char		 module[512];	/* PKCS#11 module (reader chip: our
					 * mintline-pkcs11.so) */
	char		 serial[HS_MAX_SERIAL + 1];	/* default: from cert */
	int		 timeout_ms;
};

/*
 * getopt_long glue so that every subcommand takes the same connection
 * options: add ST_CONN_LONG_OPTS to the command's struct option table and
 * call st_conn_option() for values >= ST_CONN_OPT_BASE.  Long names:
 *   --server --flow --kind --ca --crl --cert --key --module --serial
 *   --timeout
 */
#define ST_CONN_OPT_BASE	0x1000
#define ST_CONN_LONG_OPTS \
	{ "server",  required_argument, NULL, ST_CONN_OPT_BASE + 0 }, \
	{ "flow",    required_argument, NULL, ST_CONN_OPT_BASE + 1 }, \
	{ "kind",    required_argument, NULL, ST_CONN_OPT_BASE + 2 }, \
	{ "ca",      required_argument, NULL, ST_CONN_OPT_BASE + 3 }, \
	{ "crl",     required_argument, NULL, ST_CONN_OPT_BASE + 4 }, \
	{ "cert",    required_argument, NULL, ST_CONN_OPT_BASE + 5 }, \
	{ "key",     required_argument, NULL, ST_CONN_OPT_BASE + 6 }, \
	{ "module",  required_argument, NULL, ST_CONN_OPT_BASE + 7 }, \
	{ "serial",  required_argument, NULL, ST_CONN_OPT_BASE + 8 }, \
	{ "timeout", required_argument, NULL, ST_CONN_OPT_BASE + 9 }
#define ST_CONN_USAGE \
"  --server HOST:PORT   mintline-server (127.0.0.1:7443; [v6-address]:PORT)\n" \
"  --flow A|B           handshake A (ID-2) or B (ID-4); default A\n" \
"  --kind reader|station  what our certificate says we are (reader)\n" \
"  --ca FILE            CA root the server certificate must chain to\n" \
"  --crl FILE           CRL for the server certificate (optional)\n" \
"  --cert FILE          our certificate chain (PEM, leaf first)\n" \
"  --key URI            our key: pkcs11:token=..;object=..?pin-source=..\n" \
"  --module PATH        PKCS#11 module holding --key\n" \
"  --serial S           our serial (default: from --cert)\n" \
"  --timeout MS         per read (10000)\n"

void	st_conn_default(struct st_conn *c);
/* 0, or ML_ERR_ARG for a bad value, after saying why on stderr. */
int	st_conn_option(struct st_conn *c, int opt, const char *arg);

/*
 * The one way a station subcommand reaches mintline-server: split server
 * ("host:port" or "[v6-address]:port", ml_hostport_split), connect, run the
 * handshake in cfg.  Returns 0 with *ret_chan, or ML_ERR_*; *ret_alert gets
 * the server's HS_ALERT_* (0 if none).  On failure the error context names
 * the address and the cause: "cannot connect to 127.0.0.1 port 7443:
 * Connection refused", "handshake A with ... failed: the server refused:
 * ...".
 */
ML_MUST_CHECK int st_server_connect(const char *server,
    const struct hs_client_cfg *cfg, struct hs_chan **ret_chan,
    int *ret_alert);

/*
 * Is anything listening at server ("host:port")?  A TCP connect, closed at
 * once, within timeout_ms: the pages' view of the server connection
 * (OP-1), much cheaper than a handshake.  0, or ML_ERR_IO / ML_ERR_TIMEOUT
 * with the cause in why ("Connection refused").
 */
ML_MUST_CHECK int st_server_reachable(const char *server, int timeout_ms,
    char *why, size_t cap);

/*
 * What a station command presents and trusts in its handshakes, loaded
 * once from its st_conn: the CA (and CRL), our chain, our key, our leaf's
 * facts (parsed once: parsing it per handshake was a third of a
 * handshake's instructions), our serial.
 */
struct st_cred {
	struct hs_trust		*trust;
	struct hs_chain		 chain;
	struct key		*key;
	struct hs_certinfo	 facts;
	char			 serial[HS_MAX_SERIAL + 1];
};

/*
 * Load c's credentials into *cr and fill *ret_cfg for handshakes with
 * them (its pointers point into *cr, which must stay where it is).  The
 * failure is logged, naming the file or key.  st_cred_close(cr) after,
 * on failure too.
 */
ML_MUST_CHECK int st_cred_open(const struct st_conn *c, struct st_cred *cr,
    struct hs_client_cfg *ret_cfg);
void	st_cred_close(struct st_cred *cr);

/* An open link: the channel plus the credentials it borrows. */
struct st_link {
	struct hs_chan	*chan;
	struct st_cred	 cred;
	int		 alert;		/* HS_ALERT_* when refused */
};

/*
 * Connect and run the handshake.  Returns 0 with *ret_link, or ML_ERR_*;
 * on ML_ERR_REJECTED/ML_ERR_CERT the reason is logged.
 */
ML_MUST_CHECK int st_link_open(const struct st_conn *c,
    struct st_link **ret_link);
void	st_link_close(struct st_link *l);	/* NULL-safe */

/* Subcommands. */
int	cmd_handshake(const struct st_opts *so, int argc, char **argv);

#endif
