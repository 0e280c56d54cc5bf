/*
 * The chip link front: picks a transport by the spec's prefix and forwards.
 */
#include <stdlib.h>
#include <string.h>

#include "ml_wipe.h"
#include "chiplink.h"
#include "link_impl.h"

struct chiplink {
	const struct chiplink_ops	*ops;
	void				*state;
};

static const struct chiplink_ops *const transports[] = {
	&chiplink_inproc_ops,
	&chiplink_pcsc_ops,
};

int
chiplink_open(const char *spec, struct chiplink **ret_link)
{
	const struct chiplink_ops *ops = NULL;
	struct chiplink *l = NULL;
	const char *arg = NULL;
	size_t i, n;
	int r;

	unsigned mark = ml_errctx_mark();

	if (spec == NULL) {
		return ML_ERR_ARG;
	}
	for (i = 0; i < ML_NELEM(transports); i++) {
		n = strlen(transports[i]->name);
		if (strncmp(spec, transports[i]->name, n) == 0 && spec[n] == ':') {
			ops = transports[i];
			arg = spec + n + 1;
			break;
		}
		if (strcmp(spec, transports[i]->name) == 0) {
			ops = transports[i];
			arg = "";
			break;
		}
	}
	if (ops == NULL) {
		return ml_errf(ML_ERR_ARG, "chip link '%s': want inproc:DIR or "
		    "pcsc:[READER-FILTER]", spec);
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		return ML_ERR_NOMEM;
	}
	l->ops = ops;
	if ((r = ops->open(arg, &l->state)) != 0) {
		free(l);
		if (!ml_errctx_since(mark, r)) {
			(void)ml_errf(r, "chip link %s: %s", spec, ml_strerror(r));
		}
		return r;
	}
	*ret_link = l;
	return 0;
}

void
chiplink_close(struct chiplink *l)
{
	if (l == NULL) {
		return;
	}
	l->ops->close(l->state);
	free(l);
}

size_t
chiplink_nslots(const struct chiplink *l)
{
	return l->ops->nslots(l->state);
}

int
chiplink_slot_info(struct chiplink *l, size_t slot, struct chiplink_slot_info *ret)
{
	return l->ops->slot_info(l->state, slot, ret);
}

int
chiplink_transmit(struct chiplink *l, size_t slot, uint64_t generation,
    const uint8_t *cmd, size_t cmd_len, uint8_t *resp, size_t resp_cap,
    size_t *ret_resp_len)
{
	struct chiplink_slot_info si;
	unsigned mark = ml_errctx_mark();
	int r;

	if (cmd == NULL || resp == NULL || ret_resp_len == NULL || resp_cap < 2) {
		return ML_ERR_ARG;
	}
	r = l->ops->transmit(l->state, slot, generation, cmd, cmd_len, resp,
	    resp_cap, ret_resp_len);
	/* name the position when the transport did not say more */
	if (r != 0 && !ml_errctx_since(mark, r) &&
	    l->ops->slot_info(l->state, slot, &si) == 0) {
		(void)ml_errf(r, "%s: %s", si.name, ml_strerror(r));
	}
	return r;
}

void
chiplink_lock(struct chiplink *l, size_t slot)
{
	l->ops->lock(l->state, slot);
}

void
chiplink_unlock(struct chiplink *l, size_t slot)
{
	l->ops->unlock(l->state, slot);
}

int
chiplink_wait(struct chiplink *l, int timeout_ms, size_t *ret_slot)
{
	return l->ops->wait(l->state, timeout_ms, ret_slot);
}

int
chiplink_inproc_feed(struct chiplink *l, size_t slot, const char *image_path)
{
	if (l->ops->feed == NULL) {
		return ML_ERR_UNSUPPORTED;
	}
	return l->ops->feed(l->state, slot, image_path);
}

int
chiplink_apdu(struct chiplink *l, size_t slot, uint64_t generation,
    const uint8_t *cmd, size_t cmd_len, uint8_t *data, size_t data_cap,
    size_t *ret_data_len, uint16_t *ret_sw)
{
	uint8_t *buf;
	size_t n = 0, cap = data_cap + 2;
	int r;

	if ((buf = malloc(cap)) == NULL) {
		return ML_ERR_NOMEM;
	}
	r = chiplink_transmit(l, slot, generation, cmd, cmd_len, buf, cap, &n);
	if (r == 0 && n < 2) {
		r = ML_ERR_FORMAT;
	}
	if (r == 0) {
		n -= 2;
		if (n > data_cap) {
			r = ML_ERR_TOO_LARGE;
		} else {
			if (n > 0) {
				memcpy(data, buf, n);
			}
			*ret_data_len = n;
			*ret_sw = (uint16_t)((buf[n] << 8) | buf[n + 1]);
		}
	}
	ml_freezero(buf, cap);
	return r;
}
