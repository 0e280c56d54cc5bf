/*
 * The applications mintline-server serves over the channel.  Add yours as
 * one line in srv_apps[] (declare its struct hs_app extern here); its
 * handlers run on worker threads (hs_api.h, hs_handler_fn).
 *
 * The channel itself answers HS_REC_PING and HS_REC_CLOSE (srv_session.c).
 */
#include <stddef.h>
#include <string.h>

#include "srv.h"

/* Echo for diagnostics: HS_REC_WHOAMI (hs_api.h) replies with the
 * authenticated peer's flow, kind, serial and certificate number. */
static int
whoami(void *app_ctx, const struct hs_peer *peer, uint8_t type,
    const uint8_t *payload, size_t len, struct ml_wr *reply,
    uint8_t *reply_type)
{
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_wr_u8(reply, (uint8_t)peer->flow));
	ML_TRY(ml_wr_u8(reply, (uint8_t)peer->kind));
	ML_TRY(ml_wr_lv8(reply, peer->serial, strlen(peer->serial)));
	ML_TRY(ml_wr_lv8(reply, peer->certno, strlen(peer->certno)));
	*reply_type = HS_REC_WHOAMI;
	r = 0;
out:
	return r;
}

static const struct hs_handler whoami_handlers[] = {
	{ HS_REC_WHOAMI, whoami },
};

static const struct hs_app srv_app_whoami = {
	.name = "whoami",
	.handlers = whoami_handlers,
	.nhandlers = ML_NELEM(whoami_handlers),
};

extern const struct hs_app srv_app_idread;	/* idread_app.c (ID-7..ID-10) */
extern const struct hs_app srv_app_note;	/* note_app.c (BN-6..BN-8) */

const struct hs_app *const srv_apps[] = {
	&srv_app_whoami,
	&srv_app_idread,
	&srv_app_note,		/* BN-6..BN-8 */
	NULL,
};

void
srv_app_env(struct srv *s, struct hs_app_env *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->registry = s->reg;
	ret->server_key = s->key;
	ret->keys = &s->keys;
	ret->server_pub = s->pub;
	ret->trust = s->trust;
	ret->opts = &s->o;
}

void
srv_apps_reload(struct srv *s)
{
	struct hs_app_env env;
	size_t i;

	srv_app_env(s, &env);
	for (i = 0; i < s->napps; i++) {
		if (s->apps[i].app->reload != NULL) {
			s->apps[i].app->reload(s->apps[i].ctx, &env);
		}
	}
}
