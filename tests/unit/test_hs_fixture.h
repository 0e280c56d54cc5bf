/*
 * Shared fixture for the handshake tests and benchmarks: an in-process CA,
 * a server and readers with software keys, and a memory pipe that runs
 * both ends of hs/ with a hook to tamper with or replace any message.
 * Header-only (static functions) so each test program includes it once.
 */
#ifndef TEST_HS_FIXTURE_H
#define TEST_HS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "key_soft.h"
#include "hs.h"
#include "hs_ca.h"
#include "ml_wipe.h"

struct fx_party {
	struct ml_p256_key	*key;
	struct key		 ko;
	uint8_t			 pub[ML_P256_PUB_LEN];
	uint8_t			*cert;
	size_t			 cert_len;
	struct hs_blob		 chain[1];
	char			 serial[HS_MAX_SERIAL + 1];
	char			 certno[HS_MAX_CERTNO + 1];
};

/* A tiny registry for check_peer: serial -> certno, flagged. */
struct fx_reg_entry {
	char	serial[HS_MAX_SERIAL + 1];
	char	certno[HS_MAX_CERTNO + 1];
	int	kind;
	int	flagged;
};
struct fx_reg {
	struct fx_reg_entry	e[16];
	int			n;
};

static __attribute__((unused)) int
fx_check_peer(void *ctx, const struct hs_peer *p, int *ret_alert)
{
	struct fx_reg *reg = ctx;
	int i;

	for (i = 0; i < reg->n; i++) {
		if (strcmp(reg->e[i].serial, p->serial) != 0) {
			continue;
		}
		if (strcmp(reg->e[i].certno, p->certno) != 0 ||
		    reg->e[i].kind != (int)p->kind) {
			*ret_alert = HS_ALERT_IDENTITY;
			return ML_ERR_REJECTED;
		}
		if (reg->e[i].flagged) {
			*ret_alert = HS_ALERT_RISK;
			return ML_ERR_REJECTED;
		}
		return 0;
	}
	*ret_alert = HS_ALERT_UNKNOWN;
	return ML_ERR_REJECTED;
}

static __attribute__((unused)) void
fx_die(const char *what)
{
	fprintf(stderr, "fixture: %s failed\n", what);
	abort();
}

static __attribute__((unused)) void
fx_party_make(struct fx_party *p, const struct hs_ca *ca, const char *role,
    const char *serial, uint64_t certno, long backdate_s, long valid_s)
{
	uint8_t priv[ML_P256_PRIV_LEN];
	struct hs_ca_req req = {
		.role = role, .serial = serial, .certno = certno,
		.backdate_s = backdate_s, .valid_s = valid_s,
	};

	memset(p, 0, sizeof(*p));
	if (ml_p256_keygen(priv, p->pub) != 0 ||
	    ml_p256_key_from_priv(priv, &p->key) != 0) {
		fx_die("keygen");
	}
	ml_wipe(priv, sizeof(priv));
	key_soft_init(&p->ko, p->key);
	req.pub = p->pub;
	if (hs_ca_issue(ca, &req, &p->cert, &p->cert_len) != 0) {
		fx_die("issue");
	}
	p->chain[0].p = p->cert;
	p->chain[0].len = p->cert_len;
	snprintf(p->serial, sizeof(p->serial), "%s", serial ? serial : "server");
	snprintf(p->certno, sizeof(p->certno), "%llX",
	    (unsigned long long)certno);
}

/* Frees what fx_party_make() allocated (not for fx_party_reissue() copies
 * of another party, which share its key: free only their cert). */
static __attribute__((unused)) void
fx_party_free(struct fx_party *p)
{
	ml_p256_key_free(p->key);
	free(p->cert);
	memset(p, 0, sizeof(*p));
}

/* Another certificate for the same key. */
static __attribute__((unused)) void
fx_party_reissue(struct fx_party *dst, const struct fx_party *src,
    const struct hs_ca *ca, const char *role, const char *serial,
    uint64_t certno, long backdate_s, long valid_s, bool sign_only)
{
	struct hs_ca_req req = {
		.pub = src->pub, .role = role, .serial = serial,
		.certno = certno, .backdate_s = backdate_s, .valid_s = valid_s,
		.sign_only = sign_only,
	};

	/* dst == src replaces the certificate: free the one it had */
	uint8_t *old = (dst == src) ? src->cert : NULL;

	*dst = *src;
	if (hs_ca_issue(ca, &req, &dst->cert, &dst->cert_len) != 0) {
		fx_die("reissue");
	}
	free(old);
	dst->chain[0].p = dst->cert;
	dst->chain[0].len = dst->cert_len;
	snprintf(dst->serial, sizeof(dst->serial), "%s", serial ? serial : "server");
	snprintf(dst->certno, sizeof(dst->certno), "%llX",
	    (unsigned long long)certno);
}

static __attribute__((unused)) struct hs_client_cfg
fx_client_cfg(struct fx_party *p, enum hs_flow flow, const struct hs_trust *t)
{
	struct hs_client_cfg c = {
		.flow = flow, .kind = HS_KIND_READER,
		.cred = { .key = &p->ko, .chain = p->chain, .nchain = 1,
		    .pub = p->pub, .certno = p->certno },
		.trust = t, .serial = p->serial,
	};
	return c;
}

static __attribute__((unused)) struct hs_server_cfg
fx_server_cfg(struct fx_party *p, const struct hs_trust *t, struct fx_reg *reg)
{
	struct hs_server_cfg s = {
		.cred = { .key = &p->ko, .chain = p->chain, .nchain = 1,
		    .pub = p->pub },
		.trust = t, .check_peer = reg ? fx_check_peer : NULL,
		.check_ctx = reg,
	};
	return s;
}

/* ---- memory pipe ---- */

/* Called for each message in flight: idx counts messages (0 = KEYREQ),
 * from_client tells the direction; may rewrite *body. */
typedef void (*fx_hook_fn)(void *arg, int idx, bool from_client,
    struct ml_wr *body);

struct fx_run {
	struct hs	*c, *s;
	int		 cr, sr;	/* results of the last advance per side */
	int		 calert, salert;
	int		 nmsgs;
	struct ml_wr	 msgs[8];	/* copies of bodies as delivered */
};

static __attribute__((unused)) void
fx_run_free(struct fx_run *fr)
{
	int i;

	hs_free(fr->c);
	hs_free(fr->s);
	for (i = 0; i < 8; i++) {
		ml_wr_free(&fr->msgs[i]);
	}
	memset(fr, 0, sizeof(*fr));
}

/* Deliver every frame in *src to hs (the other side), collecting its
 * output in *dst.  Returns the last result. */
static __attribute__((unused)) int
fx_deliver(struct fx_run *fr, struct ml_wr *src, struct hs *to, bool from_client,
    struct ml_wr *dst, fx_hook_fn hook, void *arg)
{
	struct ml_rd rd = ML_RD_INIT(src->p, src->len), body;
	struct ml_wr b;
	int r = 0;

	while (ml_rd_left(&rd) > 0) {
		if (hs_frame_next(&rd, HS_MAX_FRAME, &body) != 0) {
			fx_die("frame");
		}
		b = ml_wr_dyn(2 * HS_MAX_FRAME);
		if (ml_wr_bytes(&b, ml_rd_ptr(&body), ml_rd_left(&body)) != 0) {
			fx_die("copy");
		}
		if (hook != NULL) {
			hook(arg, fr->nmsgs, from_client, &b);
		}
		if (fr->nmsgs < 8) {
			fr->msgs[fr->nmsgs] = ml_wr_dyn(2 * HS_MAX_FRAME);
			if (ml_wr_bytes(&fr->msgs[fr->nmsgs], b.p, b.len) != 0) {
				fx_die("record");
			}
		}
		fr->nmsgs++;
		r = hs_advance(to, b.p, b.len, dst);
		ml_wr_free(&b);
		if (r != 0) {
			break;
		}
	}
	ml_wr_clear(src);
	return r;
}

/* Run a whole handshake through the pipe.  Keeps both engines in fr. */
static __attribute__((unused)) void
fx_run(struct fx_run *fr, const struct hs_client_cfg *cc,
    const struct hs_server_cfg *sc, fx_hook_fn hook, void *arg)
{
	struct ml_wr cout = ml_wr_dyn(1 << 20), sout = ml_wr_dyn(1 << 20);
	int guard;

	memset(fr, 0, sizeof(*fr));
	if (hs_client_new(cc, &fr->c) != 0 || hs_server_new(sc, &fr->s) != 0) {
		fx_die("hs_new");
	}
	fr->cr = hs_advance(fr->c, NULL, 0, &cout);
	for (guard = 0; guard < 16 && fr->cr == 0 && fr->sr == 0; guard++) {
		if (cout.len > 0) {
			fr->sr = fx_deliver(fr, &cout, fr->s, true, &sout, hook, arg);
		}
		if (sout.len > 0) {
			fr->cr = fx_deliver(fr, &sout, fr->c, false, &cout, hook, arg);
		} else if (cout.len == 0) {
			break;
		}
	}
	/* a server alert still reaches the client */
	if (fr->sr != 0 && sout.len > 0) {
		fr->cr = fx_deliver(fr, &sout, fr->c, false, &cout, NULL, NULL);
	}
	fr->calert = hs_alert(fr->c);
	fr->salert = hs_alert(fr->s);
	ml_wr_free(&cout);
	ml_wr_free(&sout);
}

#endif
