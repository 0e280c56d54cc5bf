/* The station's link to mintline-server (st.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hs.h"
#include "ml_log.h"
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

int
st_conn_option(struct st_conn *c, int opt, const char *arg)
{
	char *end;
	long v;

#define STR(f) (snprintf(c->f, sizeof(c->f), "%s", arg) < (int)sizeof(c->f) ? \
	0 : ML_ERR_ARG)
	switch (opt - ST_CONN_OPT_BASE) {
	case 0: return STR(server);
	case 1:
		if (strcasecmp(arg, "A") == 0) {
			c->flow = HS_FLOW_A;
		} else if (strcasecmp(arg, "B") == 0) {
			c->flow = HS_FLOW_B;
		} else {
			return ML_ERR_ARG;
		}
		return 0;
	case 2:
		if (strcmp(arg, "reader") == 0) {
			c->kind = HS_KIND_READER;
		} else if (strcmp(arg, "station") == 0) {
			c->kind = HS_KIND_STATION;
		} else {
			return ML_ERR_ARG;
		}
		return 0;
	case 3: return STR(ca);
	case 4: return STR(crl);
	case 5: return STR(cert);
	case 6: return STR(key);
	case 7: return STR(module);
	case 8: return STR(serial);
	case 9:
		errno = 0;
		v = strtol(arg, &end, 10);
		if (errno != 0 || *end != '\0' || v < 1 || v > 600000) {
			return ML_ERR_ARG;
		}
		c->timeout_ms = (int)v;
		return 0;
	default:
		return ML_ERR_ARG;
	}
#undef STR
}

void
st_link_close(struct st_link *l)
{
	if (l == NULL) {
		return;
	}
	hs_chan_close(l->chan);
	hs_p11_free(l->key);
	hs_trust_free(l->trust);
	hs_chain_free(&l->chain);
	free(l);
}

int
st_link_open(const struct st_conn *c, struct st_link **ret_link)
{
	struct st_link *l = NULL;
	struct hs_certinfo ci;
	struct hs_client_cfg cfg;
	char host[128], *port;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(c->ca[0] && c->cert[0] && c->key[0], ML_ERR_ARG);
	ML_ENSURE((l = calloc(1, sizeof(*l))) != NULL, ML_ERR_NOMEM);
	ML_TRY(hs_trust_load(c->ca, c->crl[0] ? c->crl : NULL, &l->trust));
	if ((r = hs_chain_load(c->cert, &l->chain)) != 0) {
		ml_err("cannot load certificate %s", c->cert);
		goto out;
	}
	if ((r = hs_p11_open(c->module, c->key, &l->key)) != 0) {
		ml_err("cannot open key: %s", ml_errname(r));
		goto out;
	}
	hs_p11_keyops(l->key, &l->ko);
	ML_TRY(hs_cert_facts(l->chain.blob[0].p, l->chain.blob[0].len, &ci));
	memset(&cfg, 0, sizeof(cfg));
	cfg.flow = c->flow;
	cfg.kind = c->kind;
	cfg.cred.keyops = &l->ko;
	cfg.cred.chain = l->chain.blob;
	cfg.cred.nchain = l->chain.n;
	memcpy(l->pub, ci.pub, sizeof(l->pub));
	snprintf(l->certno, sizeof(l->certno), "%s", ci.certno);
	cfg.cred.pub = l->pub;
	cfg.cred.certno = l->certno;
	cfg.trust = l->trust;
	cfg.serial = c->serial[0] ? c->serial : ci.serial;
	cfg.timeout_ms = c->timeout_ms;
	snprintf(host, sizeof(host), "%s", c->server);
	ML_ENSURE((port = strrchr(host, ':')) != NULL, ML_ERR_ARG);
	*port++ = '\0';
	r = hs_connect(host, port, &cfg, &l->chan, &l->alert);
	if (r != 0) {
		/* Name the server's alert (ID-5: why it ended the flow early). */
		if (l->alert != 0) {
			ml_err("handshake %c with %s failed: %s: %s (%s)",
			    c->flow == HS_FLOW_A ? 'A' : 'B', c->server,
			    ml_strerror(r), hs_alert_text(l->alert),
			    hs_alert_name(l->alert));
		} else {
			ml_err("handshake %c with %s failed: %s",
			    c->flow == HS_FLOW_A ? 'A' : 'B', c->server,
			    ml_strerror(r));
		}
		goto out;
	}
	*ret_link = l;
	l = NULL;
	r = 0;
out:
	st_link_close(l);
	return r;
}
