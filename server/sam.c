/*
 * SAM back-end dispatch (sam.h): a table of back-ends, one line each.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ml_wipe.h"

#include "sam.h"

static const struct sam_ops *const sam_backends[] = {
	&sam_emul_ops,
	&sam_pcsc_ops,
	/* another SAM driver goes here */
};

struct sam {
	const struct sam_ops	*ops;
	void			*ctx;
	atomic_uint_fast64_t	 decodes;
	atomic_uint_fast64_t	 failures;
};

int
sam_open(const char *spec, struct sam **ret_sam)
{
	const struct sam_ops *ops = NULL;
	const char *colon, *arg;
	struct sam *s = NULL;
	size_t i, nlen;
	int r;

	ML_ENSURE(spec != NULL, ML_ERR_ARG);
	colon = strchr(spec, ':');
	nlen = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
	arg = colon != NULL ? colon + 1 : "";
	for (i = 0; i < ML_NELEM(sam_backends); i++) {
		if (strlen(sam_backends[i]->name) == nlen &&
		    strncmp(sam_backends[i]->name, spec, nlen) == 0) {
			ops = sam_backends[i];
		}
	}
	ML_ENSURE(ops != NULL, ML_ERR_NOT_FOUND);
	ML_ENSURE((s = calloc(1, sizeof(*s))) != NULL, ML_ERR_NOMEM);
	s->ops = ops;
	atomic_init(&s->decodes, 0);
	atomic_init(&s->failures, 0);
	ML_TRY(ops->open(arg, &s->ctx));
	*ret_sam = s;
	s = NULL;
	r = 0;
out:
	free(s);
	return r;
}

void
sam_close(struct sam *s)
{
	if (s == NULL) {
		return;
	}
	s->ops->close(s->ctx);
	ml_freezero(s, sizeof(*s));
}

const char *
sam_name(const struct sam *s)
{
	return s->ops->name;
}

int
sam_decode(struct sam *s, const uint8_t *config, size_t config_len,
    const uint8_t *data, size_t data_len, struct ml_wr *info)
{
	size_t mark = info->len;
	int r;

	r = s->ops->decode(s->ctx, config, config_len, data, data_len, info);
	atomic_fetch_add(&s->decodes, 1);
	if (r != 0) {
		atomic_fetch_add(&s->failures, 1);
		if (info->len > mark) {	/* a back-end that left bytes */
			ml_wipe(info->p + mark, info->len - mark);
			info->len = mark;
		}
	}
	return r;
}

void
sam_get_stats(const struct sam *s, struct sam_stats *ret)
{
	ret->decodes = atomic_load(&((struct sam *)s)->decodes);
	ret->failures = atomic_load(&((struct sam *)s)->failures);
}
