/*
 * The pcsc: SAM back-end (ID-10): SAM modules in SAM slots behind PC/SC,
 * reached over the chip link (chiplink/) as a deployment reaches real
 * ones.  Each SAM is a chip of kind "sam" (chip-applet/applet_sam.c;
 * mintline-chip + vpcd in tests, tools/mintline-mksam makes one); one
 * SAM DECODE command decodes one card.
 *
 * A pool: every PC/SC reader whose name contains FILTER is a slot; slots
 * that hold a SAM serve reads, one read per SAM at a time, the next free
 * SAM taken round robin (a burst of readers queues for a free SAM).  A
 * SAM that fails a read (removed, transport error, no SAM in the slot any
 * more) fails that attempt only: it is left out for SAM_PCSC_REST_MS and
 * the read is retried on another SAM.  The verdicts of the card itself
 * (the data does not open: ML_ERR_AUTH; malformed: ML_ERR_FORMAT) are
 * final, whichever SAM said them.
 *
 * Spec: "pcsc:FILTER" ("pcsc:" for every reader).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ml_log.h"
#include "ml_wipe.h"

#include "chip.h"
#include "chip_proto.h"
#include "chipcmd.h"
#include "chiplink.h"
#include "idcard_format.h"
#include "sam.h"
#include "sw.h"

#define SAM_PCSC_REST_MS	1000	/* a failed SAM sits out this long */
#define SAM_PCSC_OTHER_MS	10000	/* a slot without a SAM: looked at
					 * again after this long */
#define SAM_PCSC_MAX_CMD	(1 + IDC_CONFIG_MAX + IDCARD_MAX_DATA)

struct sam_slot {
	bool		 busy;		/* a read is on it */
	uint64_t	 gen;		/* the chip generation checked below */
	bool		 is_sam;	/* that chip is a locked SAM */
	char		 serial[CHIP_SERIAL_LEN + 1];
	uint64_t	 rest_until_ms;	/* failed: not before this */
	bool		 failed;	/* since the last good bind */
	uint64_t	 decodes;
};

struct sam_pcsc {
	struct chiplink	*link;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	size_t		 nslots;
	size_t		 next;		/* round robin start */
	struct sam_slot	*s;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *
slot_name(struct sam_pcsc *p, size_t i, char *buf, size_t len)
{
	struct chiplink_slot_info si;

	if (chiplink_slot_info(p->link, i, &si) != 0) {
		snprintf(buf, len, "slot %zu", i);
	} else {
		snprintf(buf, len, "%s", si.name);
	}
	return buf;
}

/*
 * Bind cc to the chip in slot i and make sure it is a locked SAM: checked
 * once per chip generation.  ML_ERR_REMOVED (no chip), ML_ERR_NOT_FOUND
 * (not a SAM), or the transport's error.  Called without p->mu, the slot
 * marked busy by the caller.
 */
static int
slot_bind(struct sam_pcsc *p, size_t i, struct chipcmd *cc)
{
	struct sam_slot *s = &p->s[i];
	struct chip_info ci;
	int r;

	if ((r = chipcmd_begin(cc, p->link, i)) != 0) {
		return r;
	}
	if (cc->generation != s->gen) {
		s->is_sam = false;
		s->gen = cc->generation;
		if ((r = chipcmd_info(cc, &ci)) != 0) {
			s->gen = 0;
			return r;
		}
		s->is_sam = ci.kind == CHIP_KIND_SAM &&
		    (ci.state & INFO_F_LOCKED) != 0;
		snprintf(s->serial, sizeof(s->serial), "%.*s",
		    (int)strcspn(ci.serial, " "), ci.serial);	/* unpadded */
		if (s->is_sam && s->failed) {
			ml_log(ML_LOG_WARN, "sam pcsc: SAM %s is back in "
			    "service (slot %zu)", s->serial, i);
			s->failed = false;
		}
	}
	return s->is_sam ? 0 : ML_ERR_NOT_FOUND;
}

/* SAM DECODE on the SAM in slot i (bound in cc). */
static int
slot_decode(struct chipcmd *cc, const char *serial, const uint8_t *cmd,
    size_t cmd_len, struct ml_wr *info)
{
	uint8_t *out = NULL;
	size_t n = 0;
	uint16_t sw = 0;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE((out = malloc(SAM_MAX_INFO)) != NULL, ML_ERR_NOMEM);
	ML_TRY(chipcmd_send(cc, CLA_PROP, INS_SAM_DECODE, 0, 0, cmd, cmd_len,
	    SAM_MAX_INFO, out, SAM_MAX_INFO, &n, &sw));
	switch (sw) {
	case SW_OK:
		r = ml_wr_bytes(info, out, n);
		break;
	case SW_SECURITY_NOT_SATISFIED:
		r = ML_ERR_AUTH;	/* not a card of this SAM key */
		break;
	case SW_WRONG_DATA:
		r = ML_ERR_FORMAT;
		break;
	default:
		r = ml_errf(ML_ERR_IO, "SAM %s: DECODE answered %s (SW %04X)",
		    serial, chipcmd_sw_text(sw), sw);
		ml_warn("sam pcsc: %s", ml_errmsg(r));
		break;
	}
out:
	ml_freezero(out, SAM_MAX_INFO);
	return r;
}

/* Take a free usable slot not in tried[]; wait while all are busy.
 * Returns the slot, or nslots when none is left to try. */
static size_t
slot_take(struct sam_pcsc *p, const bool *tried)
{
	size_t k, i, cand;
	bool waiting;
	uint64_t t;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		cand = p->nslots;
		waiting = false;
		t = now_ms();
		for (k = 0; k < p->nslots; k++) {
			i = (p->next + k) % p->nslots;
			if (tried[i] || t < p->s[i].rest_until_ms) {
				continue;
			}
			if (p->s[i].busy) {
				waiting = true;
				continue;
			}
			cand = i;
			break;
		}
		if (cand < p->nslots) {
			p->s[cand].busy = true;
			p->next = (cand + 1) % p->nslots;
			break;
		}
		if (!waiting) {
			break;
		}
		pthread_cond_wait(&p->cv, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return cand;
}

enum slot_outcome { SLOT_DONE, SLOT_FAILED, SLOT_NO_SAM };

static void
slot_give(struct sam_pcsc *p, size_t i, enum slot_outcome o)
{
	pthread_mutex_lock(&p->mu);
	p->s[i].busy = false;
	switch (o) {
	case SLOT_DONE:
		p->s[i].decodes++;
		break;
	case SLOT_FAILED:
		p->s[i].rest_until_ms = now_ms() + SAM_PCSC_REST_MS;
		p->s[i].gen = 0;	/* check it again when it is back */
		p->s[i].failed = true;
		break;
	case SLOT_NO_SAM:	/* another card, or none: not a failure */
		p->s[i].rest_until_ms = now_ms() + SAM_PCSC_OTHER_MS;
		break;
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static int
pcsc_sam_decode(void *ctx, const uint8_t *config, size_t config_len,
    const uint8_t *data, size_t data_len, struct ml_wr *info)
{
	struct sam_pcsc *p = ctx;
	struct chipcmd cc;
	struct ml_wr cmd = ml_wr_dyn(SAM_PCSC_MAX_CMD);
	bool *tried = NULL, again;
	char name[CHIPLINK_NAME_MAX], serial[CHIP_SERIAL_LEN + 1];
	char why[ML_ERRCTX_MAX];
	size_t i;
	int r = ML_ERR_INTERNAL, last = ML_ERR_IO;

	ML_ENSURE(config_len >= 1 && config_len <= IDC_CONFIG_MAX &&
	    data_len >= 1 && data_len <= IDCARD_MAX_DATA, ML_ERR_FORMAT);
	ML_TRY(ml_wr_u8(&cmd, (uint8_t)config_len));
	ML_TRY(ml_wr_bytes(&cmd, config, config_len));
	ML_TRY(ml_wr_bytes(&cmd, data, data_len));
	ML_ENSURE((tried = calloc(p->nslots, sizeof(*tried))) != NULL,
	    ML_ERR_NOMEM);
	while ((i = slot_take(p, tried)) < p->nslots) {
		tried[i] = true;
		chiplink_lock(p->link, i);
		if ((r = slot_bind(p, i, &cc)) == 0) {
			r = slot_decode(&cc, p->s[i].serial, cmd.p, cmd.len,
			    info);
		}
		chiplink_unlock(p->link, i);
		if (r == 0 || r == ML_ERR_AUTH || r == ML_ERR_FORMAT ||
		    r == ML_ERR_NOMEM) {
			slot_give(p, i, SLOT_DONE);
			goto out;
		}
		if (r == ML_ERR_NOT_FOUND) {	/* no SAM in this slot now */
			slot_give(p, i, SLOT_NO_SAM);
			continue;
		}
		/* this SAM failed the read: the read goes to another one
		 * (the serial copied while the slot is still ours) */
		memcpy(serial, p->s[i].serial, sizeof(serial));
		again = p->s[i].failed;
		slot_give(p, i, SLOT_FAILED);
		if (!again) {	/* said once until it is back in service */
			ml_warn("sam pcsc: SAM %s in %s failed a read (%s); "
			    "retrying it on another SAM", serial[0] != '\0' ?
			    serial : "-", slot_name(p, i, name, sizeof(name)),
			    ml_errmsg(r));
		}
		last = r;
	}
	snprintf(why, sizeof(why), "%s", ml_errmsg(last));
	r = ml_errf(ML_ERR_IO, "no SAM could take the read (%zu slot(s)); "
	    "the last: %s", p->nslots, why);
	ml_err("sam pcsc: %s", ml_errmsg(r));
out:
	free(tried);
	ml_wr_free(&cmd);
	return r;
}

static void
pcsc_sam_close(void *ctx)
{
	struct sam_pcsc *p = ctx;
	size_t i;

	if (p == NULL) {
		return;
	}
	for (i = 0; i < p->nslots; i++) {
		if (p->s[i].decodes > 0) {
			ml_info("sam pcsc: SAM %s decoded %llu card(s)",
			    p->s[i].serial, (unsigned long long)p->s[i].decodes);
		}
	}
	chiplink_close(p->link);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->s);
	free(p);
}

static int
pcsc_sam_open(const char *arg, void **ret_ctx)
{
	struct sam_pcsc *p = NULL;
	struct chipcmd cc;
	char spec[CHIPLINK_NAME_MAX + 8], name[CHIPLINK_NAME_MAX];
	size_t i, nsam = 0;
	int r;

	ML_ENSURE(strlen(arg) < CHIPLINK_NAME_MAX, ML_ERR_ARG);
	snprintf(spec, sizeof(spec), "pcsc:%s", arg);
	ML_ENSURE((p = calloc(1, sizeof(*p))) != NULL, ML_ERR_NOMEM);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if ((r = chiplink_open(spec, &p->link)) != 0) {
		ml_err("sam pcsc: no PC/SC reader for \"%s\": %s", arg,
		    ml_errmsg(r));
		goto out;
	}
	p->nslots = chiplink_nslots(p->link);
	ML_ENSURE((p->s = calloc(p->nslots, sizeof(*p->s))) != NULL,
	    ML_ERR_NOMEM);
	/* first look: which slots hold a SAM now (others are looked at
	 * again when a read needs them) */
	for (i = 0; i < p->nslots; i++) {
		chiplink_lock(p->link, i);
		r = slot_bind(p, i, &cc);
		chiplink_unlock(p->link, i);
		if (r == 0) {
			nsam++;
			ml_info("sam pcsc: SAM %s in %s", p->s[i].serial,
			    slot_name(p, i, name, sizeof(name)));
		}
	}
	ml_info("sam pcsc: %zu SAM(s) in %zu reader(s) matching \"%s\"",
	    nsam, p->nslots, arg);
	*ret_ctx = p;
	p = NULL;
	r = 0;
out:
	pcsc_sam_close(p);
	return r;
}

const struct sam_ops sam_pcsc_ops = {
	.name = "pcsc",
	.open = pcsc_sam_open,
	.close = pcsc_sam_close,
	.decode = pcsc_sam_decode,
};
