/*
 * Issuance record transport (see note_uplink.h).
 */
#include <stdlib.h>

#include "note_uplink.h"

struct note_uplink {
	struct note_server		 local;
	const struct note_uplink_ops	*ops;
	void				*ctx;
};

int
note_uplink_custom(const struct note_uplink_ops *ops, void *ctx,
    struct note_uplink **ret)
{
	struct note_uplink *u;

	if ((u = calloc(1, sizeof(*u))) == NULL) {
		return ML_ERR_NOMEM;
	}
	u->ops = ops;
	u->ctx = ctx;
	*ret = u;
	return 0;
}

#ifdef ML_TEST_HOOKS
int
note_uplink_local(const struct note_server *srv, struct note_uplink **ret)
{
	struct note_uplink *u;

	if ((u = calloc(1, sizeof(*u))) == NULL) {
		return ML_ERR_NOMEM;
	}
	u->local = *srv;
	*ret = u;
	return 0;
}
#endif

void
note_uplink_close(struct note_uplink *u)
{
	if (u == NULL) {
		return;
	}
	if (u->ops != NULL && u->ops->close != NULL) {
		u->ops->close(u->ctx);
	}
	free(u);
}

int
note_uplink_call(struct note_uplink *u, unsigned type, const uint8_t *req,
    size_t len, uint8_t *resp, size_t cap, size_t *ret_len)
{
	struct ml_wr w = ML_WR_FIXED(resp, cap);
	int r;

	if (u->ops != NULL) {
		return u->ops->call(u->ctx, type, req, len, resp, cap, ret_len);
	}
	if ((r = u->local.handle(u->local.ctx, type, req, len, &w)) != 0) {
		return r;
	}
	*ret_len = w.len;
	return 0;
}
