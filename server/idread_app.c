/*
 * ID reading served by mintline-server (ID-3, ID-7, ID-8, ID-10):
 * the record handlers of server/idr_srv.c on the worker threads, one SAM
 * shared by every reader connection, and a read record per reader in the
 * registry for risk control.
 *
 * The SAM comes from the "sam" setting (server/config.c; default
 * "emul:/etc/mintline/sam.key"), the upload limits from "idread-deadline"
 * and "idread-max-rounds".  When no SAM can be opened the server still
 * starts and every ID read is answered ML_ERR_UNSUPPORTED (logged once at
 * start).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml_log.h"

#include "hs_api.h"
#include "idpkt.h"
#include "idr_srv.h"
#include "registry.h"
#include "sam.h"
#include "srv.h"

struct idr_app {
	struct reg	*reg;
	struct sam	*sam;
	struct idr_srv	*srv;
};

/*
 * The outcome and card of an ID read from its record detail
 * ("idread ok card=C ...", "idread ML_ERR_X card=C ...", "idread aborted
 * by reader: ...").
 */
static void
read_outcome(const char *detail, struct reg_audit *a)
{
	const char *p = detail != NULL ? detail : "", *c;
	size_t n;

	if (strncmp(p, "idread ", 7) == 0) {
		p += 7;
	}
	n = strcspn(p, " ");
	snprintf(a->outcome, sizeof(a->outcome), "%.*s", (int)n, p);
	if ((c = strstr(p, "card=")) != NULL) {
		c += 5;
		n = strcspn(c, " ");
		snprintf(a->subject, sizeof(a->subject), "%.*s", (int)n, c);
	} else {
		snprintf(a->subject, sizeof(a->subject), "?");
	}
}

/*
 *= REQ ID-3 (reader identity)
 *# uses the mapping for risk control: ... read history, error history
 *
 * Every ended read (done, failed, aborted, expired) is also a reader
 * transaction: a REG_EV_TRANSACTION risk record in the same registry
 * transaction as the read or error record, and an audit row (OP-5) with
 * the reader serial, its certificate number, the card and the outcome.
 */
static void
idr_app_record(void *ctx, const struct hs_peer *peer, int ev,
    const char *detail)
{
	struct idr_app *a = ctx;
	struct reg_event_rec evs[2];
	struct reg_audit au;
	int r;

	if (a->reg == NULL) {
		return;
	}
	memset(evs, 0, sizeof(evs));
	snprintf(evs[0].serial, sizeof(evs[0].serial), "%s", peer->serial);
	evs[0].ev = (enum reg_event)ev;
	snprintf(evs[0].detail, sizeof(evs[0].detail), "%s", detail);
	evs[1] = evs[0];
	evs[1].ev = REG_EV_TRANSACTION;
	if ((r = reg_event_add_many(a->reg, evs, ML_NELEM(evs))) != 0) {
		ml_warn("idread: cannot record event for %s: %s", peer->serial,
		    ml_errname(r));
	}
	memset(&au, 0, sizeof(au));
	snprintf(au.action, sizeof(au.action), "id-read");
	snprintf(au.actor, sizeof(au.actor), "%s", peer->serial);
	snprintf(au.actor_certno, sizeof(au.actor_certno), "%s", peer->certno);
	snprintf(au.subject_kind, sizeof(au.subject_kind), "card");
	read_outcome(detail, &au);
	snprintf(au.detail, sizeof(au.detail), "%s", detail);
	if ((r = reg_audit_append(a->reg, &au)) != 0) {
		ml_warn("idread: audit row for %s not written: %s",
		    peer->serial, ml_errname(r));
	}
}

static int
idr_app_init(const struct hs_app_env *env, void **ret_ctx)
{
	struct idr_srv_cfg cfg;
	struct idr_app *a = NULL;
	const char *spec = env->opts->sam;
	int r;

	ML_ENSURE((a = calloc(1, sizeof(*a))) != NULL, ML_ERR_NOMEM);
	a->reg = env->registry;
	if ((r = sam_open(spec, &a->sam)) != 0) {
		ml_warn("idread: no SAM (%s: %s): ID reads will be refused",
		    spec, ml_errmsg(r));
		ml_errclear();		/* handled: must not label a later error */
		*ret_ctx = a;
		a = NULL;
		r = 0;
		goto out;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.deadline_ms = (uint32_t)env->opts->idread_deadline_ms;
	cfg.max_rounds = (uint8_t)env->opts->idread_max_rounds;
	cfg.record = idr_app_record;
	cfg.record_ctx = a;
	ML_TRY(idr_srv_new(&cfg, a->sam, &a->srv));
	ml_info("idread: SAM %s ready", sam_name(a->sam));
	*ret_ctx = a;
	a = NULL;
	r = 0;
out:
	if (a != NULL) {
		sam_close(a->sam);
		free(a);
	}
	return r;
}

static void
idr_app_fini(void *ctx)
{
	struct idr_app *a = ctx;

	if (a == NULL) {
		return;
	}
	idr_srv_free(a->srv);
	sam_close(a->sam);
	free(a);
}

/* SIGHUP: idread-deadline and idread-max-rounds for the next reads. */
static void
idr_app_reload(void *ctx, const struct hs_app_env *env)
{
	struct idr_app *a = ctx;

	if (a == NULL || a->srv == NULL) {
		return;
	}
	idr_srv_set_limits(a->srv, (uint32_t)env->opts->idread_deadline_ms,
	    (uint8_t)env->opts->idread_max_rounds);
}

static int
idr_app_handle(void *ctx, const struct hs_peer *peer, uint8_t type,
    const uint8_t *payload, size_t len, struct ml_wr *reply,
    uint8_t *reply_type)
{
	struct idr_app *a = ctx;

	if (a->srv == NULL) {
		return type == IDR_REC_PKT || type == IDR_REC_BURST ? 0 :
		    ML_ERR_UNSUPPORTED;
	}
	if (peer->kind != HS_KIND_READER) {
		return ML_ERR_PERM;	/* stations do not read ID cards */
	}
	return idr_srv_handle(a->srv, peer, type, payload, len, reply,
	    reply_type);
}

static const struct hs_handler idr_app_handlers[] = {
	{ IDR_REC_BEGIN,	idr_app_handle },
	{ IDR_REC_PKT,		idr_app_handle },
	{ IDR_REC_BURST,	idr_app_handle },
	{ IDR_REC_END,		idr_app_handle },
	{ IDR_REC_ABORT,	idr_app_handle },
};

const struct hs_app srv_app_idread = {
	.name = "idread",
	.init = idr_app_init,
	.reload = idr_app_reload,
	.fini = idr_app_fini,
	.handlers = idr_app_handlers,
	.nhandlers = ML_NELEM(idr_app_handlers),
};
