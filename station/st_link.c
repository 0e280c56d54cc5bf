/* The station's link to mintline-server (st.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hs.h"
#include "ml_log.h"
#include "ml_parse.h"
#include "st.h"

void
st_conn_default(struct st_conn *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->server, sizeof(c->server), "127.0.0.1:7443");
	c->flow = HS_FLOW_A;
	c->kind = HS_KIND_READER;
	c->timeout_ms = HS_DEFAULT_TIMEOUT_MS;
}

static int
conn_option(struct st_conn *c, int opt, const char *arg)
{
	char host[sizeof(c->server)], port[ML_PORT_STRLEN];
	int r;

#define STR(f) (snprintf(c->f, sizeof(c->f), "%s", arg) < (int)sizeof(c->f) ? \
	0 : ml_errf(ML_ERR_ARG, "--%s: longer than %zu characters", #f, \
	sizeof(c->f) - 1))
	switch (opt - ST_CONN_OPT_BASE) {
	case 0:
		/* checked here so that a typo is a usage error, not a
		 * connection failure after the chips were set up */
		if ((r = ml_hostport_split(arg, host, sizeof(host),
		    port)) != 0) {
			return ML_ERR_ARG;
		}
		return STR(server);
	case 1:
		if (strcasecmp(arg, "A") == 0) {
			c->flow = HS_FLOW_A;
		} else if (strcasecmp(arg, "B") == 0) {
			c->flow = HS_FLOW_B;
		} else {
			return ml_errf(ML_ERR_ARG, "--flow: '%s' is not A or B",
			    arg);
		}
		return 0;
	case 2:
		if (strcmp(arg, "reader") == 0) {
			c->kind = HS_KIND_READER;
		} else if (strcmp(arg, "station") == 0) {
			c->kind = HS_KIND_STATION;
		} else {
			return ml_errf(ML_ERR_ARG, "--kind: '%s' is not reader "
			    "or station", arg);
		}
		return 0;
	case 3: return STR(ca);
	case 4: return STR(crl);
	case 5: return STR(cert);
	case 6: return STR(key);
	case 7: return STR(module);
	case 8: return STR(serial);
	case 9:
		return ml_parse_int(arg, "--timeout", 1, 600000,
		    &c->timeout_ms);
	default:
		return ml_errf(ML_ERR_ARG, "unknown connection option");
	}
#undef STR
}

int
st_conn_option(struct st_conn *c, int opt, const char *arg)
{
	int r;

	if ((r = conn_option(c, opt, arg)) != 0) {
		fprintf(stderr, "mintline-station: %s\n", ml_errmsg(r));
	}
	return r;
}

int
st_server_connect(const char *server, const struct hs_client_cfg *cfg,
    struct hs_chan **ret_chan, int *ret_alert)
{
	char host[256], port[ML_PORT_STRLEN];
	int r, alert = 0;

	if ((r = ml_hostport_split(server, host, sizeof(host), port)) != 0) {
		return r;
	}
	r = hs_connect(host, port, cfg, ret_chan, &alert);
	if (r != 0 && alert != 0) {
		(void)ml_errf(r, "handshake %c with %s failed: the server "
		    "refused: %s (%s)", cfg->flow == HS_FLOW_A ? 'A' : 'B',
		    server, hs_alert_text(alert), hs_alert_name(alert));
	} else if (r != 0) {
		(void)ml_errpre(r, "handshake %c with %s failed",
		    cfg->flow == HS_FLOW_A ? 'A' : 'B', server);
	}
	if (ret_alert != NULL) {
		*ret_alert = alert;
	}
	return r;
}

int
st_server_reachable(const char *server, int timeout_ms, char *why, size_t cap)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	struct pollfd pfd;
	char host[256], port[ML_PORT_STRLEN];
	socklen_t len = sizeof(int);
	int fd = -1, err = 0, r;

	snprintf(why, cap, "bad address");
	if (ml_hostport_split(server, host, sizeof(host), port) != 0) {
		return ML_ERR_ARG;
	}
	if ((r = getaddrinfo(host, port, &hints, &ai)) != 0) {
		snprintf(why, cap, "%s", gai_strerror(r));
		return ML_ERR_IO;
	}
	r = ML_ERR_IO;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, cap, "%s", strerror(errno));
		goto out;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
		r = 0;
		goto out;
	}
	if (errno != EINPROGRESS) {
		snprintf(why, cap, "%s", strerror(errno));
		goto out;
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&pfd, 1, timeout_ms) != 1) {
		snprintf(why, cap, "no answer in %d ms", timeout_ms);
		r = ML_ERR_TIMEOUT;
		goto out;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
		snprintf(why, cap, "%s", strerror(err ? err : errno));
		goto out;
	}
	r = 0;
out:
	if (r == 0) {
		snprintf(why, cap, "reachable");
	}
	if (fd >= 0) {
		close(fd);
	}
	freeaddrinfo(ai);
	return r;
}

int
st_cred_open(const struct st_conn *c, struct st_cred *cr,
    struct hs_client_cfg *ret_cfg)
{
	int r = ML_ERR_INTERNAL;

	memset(cr, 0, sizeof(*cr));
	memset(ret_cfg, 0, sizeof(*ret_cfg));
	ML_ENSURE(c->ca[0] && c->cert[0] && c->key[0], ML_ERR_ARG);
	ML_TRY(hs_trust_load(c->ca, c->crl[0] ? c->crl : NULL, &cr->trust));
	if ((r = hs_chain_load(c->cert, &cr->chain)) != 0) {
		ml_err("certificate chain: %s", ml_errmsg(r));
		goto out;
	}
	if ((r = key_p11_open(c->module, c->key, &cr->key)) != 0) {
		ml_err("cannot open the channel key: %s", ml_errmsg(r));
		goto out;
	}
	ML_TRY(hs_cert_facts(cr->chain.blob[0].p, cr->chain.blob[0].len,
	    &cr->facts));
	snprintf(cr->serial, sizeof(cr->serial), "%s",
	    c->serial[0] ? c->serial : cr->facts.serial);
	ret_cfg->flow = c->flow;
	ret_cfg->kind = c->kind;
	ret_cfg->cred.key = cr->key;
	ret_cfg->cred.chain = cr->chain.blob;
	ret_cfg->cred.nchain = cr->chain.n;
	ret_cfg->cred.pub = cr->facts.pub;
	ret_cfg->cred.certno = cr->facts.certno;
	ret_cfg->trust = cr->trust;
	ret_cfg->serial = cr->serial;
	ret_cfg->timeout_ms = c->timeout_ms;
	r = 0;
out:
	return r;
}

void
st_cred_close(struct st_cred *cr)
{
	key_free(cr->key);
	hs_trust_free(cr->trust);
	hs_chain_free(&cr->chain);
	memset(cr, 0, sizeof(*cr));
}

void
st_link_close(struct st_link *l)
{
	if (l == NULL) {
		return;
	}
	hs_chan_close(l->chan);
	st_cred_close(&l->cred);
	free(l);
}

int
st_link_open(const struct st_conn *c, struct st_link **ret_link)
{
	struct st_link *l = NULL;
	struct hs_client_cfg cfg;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE((l = calloc(1, sizeof(*l))) != NULL, ML_ERR_NOMEM);
	ML_TRY(st_cred_open(c, &l->cred, &cfg));
	/* The server's alert, if any, is in the message (ID-5: why it ended
	 * the flow early). */
	if ((r = st_server_connect(c->server, &cfg, &l->chan,
	    &l->alert)) != 0) {
		ml_err("%s", ml_errmsg(r));
		goto out;
	}
	*ret_link = l;
	l = NULL;
	r = 0;
out:
	st_link_close(l);
	return r;
}
