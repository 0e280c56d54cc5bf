/*
 * The reader host: pre-read, the secure chip's ID cache, one read
 * (idr_reader.h).  Every chip answer is parsed with ml_rd / ml_tlv.
 */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ml_log.h"
#include "ml_tlv.h"
#include "ml_wipe.h"

#include "chip.h"
#include "chip_proto.h"
#include "chipcmd.h"
#include "sw.h"

#include "idpkt.h"
#include "idr_reader.h"

#define CHIP_ANSWER_MAX	65536

struct idr_reader {
	struct chiplink		*link;
	struct idr_reader_cfg	 cfg;
	struct chipcmd		 rc;		/* the reader secure chip */
	/* The user PIN of rc's login, kept (wiped at close) so that
	 * chipcmd_send() can log in again after another PC/SC client reset
	 * the shared reader chip (OP-3). */
	uint8_t			 pin[PIN_MAX_LEN];

	/* the card now in the field, as pre-read (ID-6) */
	uint64_t		 card_gen;	/* 0: none */
	uint8_t			 config[IDC_CONFIG_MAX];
	size_t			 config_len;
	struct idc_config	 card;

	uint64_t		 last_seen_ms;
	bool			 forgotten;	/* cache cleared since last card */
	int			 remove_after;	/* test hook */
	uint16_t		 key_id;	/* idr_reader_key() */
	char			 serial[CHIP_SERIAL_LEN + 1];
};

/* ---------------------------------------------------------------- chip */

static int
rc_ok(struct idr_reader *ir, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
    const void *d, size_t n, uint32_t ne, uint8_t *out, size_t cap,
    size_t *ret_len)
{
	return chipcmd_ok(&ir->rc, cla, ins, p1, p2, d, n, ne, out, cap,
	    ret_len);
}

static int
verify_pin(struct chipcmd *cc, uint8_t who, const char *pin)
{
	return chipcmd_ok(cc, CLA_ISO, INS_VERIFY, 0, who, pin, strlen(pin),
	    0, NULL, 0, NULL);
}

int
idr_reader_personalize(struct chiplink *l, size_t slot, const char *so_pin,
    const char *user_pin, uint8_t mode)
{
	struct chipcmd cc;
	uint8_t buf[96];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));
	int r;

	ML_TRY(chipcmd_begin(&cc, l, slot));
	ML_TRY(ml_wr_lv8(&w, so_pin, strlen(so_pin)));
	ML_TRY(ml_wr_lv8(&w, "mintline reader", 15));
	ML_TRY(chipcmd_ok(&cc, CLA_PROP, INS_INIT_TOKEN, 0, 0, w.p, w.len, 0,
	    NULL, 0, NULL));
	ML_TRY(verify_pin(&cc, PIN_SO, so_pin));
	ML_TRY(chipcmd_ok(&cc, CLA_ISO, INS_RESET_RETRY, 0, PIN_USER,
	    user_pin, strlen(user_pin), 0, NULL, 0, NULL));
	if (mode != 0) {
		ML_TRY(chipcmd_ok(&cc, CLA_PROP, INS_CACHE_MODE, mode, 0, NULL,
		    0, 0, NULL, 0, NULL));
	}
	ML_TRY(chipcmd_ok(&cc, CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0, 0, NULL,
	    0, NULL));
	r = 0;
out:
	ml_wipe(buf, sizeof(buf));
	return r;
}

int
idr_reader_open(struct chiplink *l, const struct idr_reader_cfg *cfg,
    struct idr_reader **ret)
{
	struct idr_reader *r0 = NULL;
	struct chip_info ci;
	int r;

	ML_ENSURE(cfg->pin != NULL, ML_ERR_ARG);
	ML_ENSURE(cfg->cache_mode == 0 || cfg->cache_mode == CACHE_MODE_MULTI ||
	    cfg->cache_mode == CACHE_MODE_SINGLE, ML_ERR_ARG);
	ML_ENSURE((r0 = calloc(1, sizeof(*r0))) != NULL, ML_ERR_NOMEM);
	r0->link = l;
	r0->cfg = *cfg;
	r0->cfg.pin = NULL;		/* not kept */
	r0->cfg.so_pin = NULL;
	if (r0->cfg.idle_ms == 0) {
		r0->cfg.idle_ms = IDR_IDLE_DEFAULT_MS;
	}
	r0->remove_after = -1;
	r0->last_seen_ms = idr_now_ms();
	ML_TRY(chipcmd_begin(&r0->rc, l, cfg->reader_slot));
	ML_TRY(chipcmd_info(&r0->rc, &ci));
	ML_ENSURE(ci.kind == CHIP_KIND_READER, ML_ERR_NOT_FOUND);
	snprintf(r0->serial, sizeof(r0->serial), "%s", ci.serial);
	for (size_t k = strlen(r0->serial); k > 0 && r0->serial[k - 1] == ' ';
	    k--) {
		r0->serial[k - 1] = '\0';
	}
	if (cfg->cache_mode != 0 && cfg->cache_mode != ci.mode) {
		/*= REQ ID-13 (cache modes) chosen by configuration */
		ML_ENSURE(cfg->so_pin != NULL, ML_ERR_PERM);
		ML_TRY(verify_pin(&r0->rc, PIN_SO, cfg->so_pin));
		ML_TRY(rc_ok(r0, CLA_PROP, INS_CACHE_MODE, cfg->cache_mode, 0,
		    NULL, 0, 0, NULL, 0, NULL));
	}
	ML_TRY(verify_pin(&r0->rc, PIN_USER, cfg->pin));
	if (strlen(cfg->pin) <= sizeof(r0->pin)) {
		memcpy(r0->pin, cfg->pin, strlen(cfg->pin));
		r0->rc.pin = r0->pin;
		r0->rc.pin_len = strlen(cfg->pin);
		r0->rc.pin_ref = PIN_USER;
	}
	*ret = r0;
	r0 = NULL;
	r = 0;
out:
	ml_freezero(r0, sizeof(*r0));
	return r;
}

int
idr_reader_forget(struct idr_reader *ir)
{
	ir->forgotten = true;
	return rc_ok(ir, CLA_PROP, INS_CACHE_CLEAR, 0, 0, NULL, 0, 0, NULL, 0,
	    NULL);
}

void
idr_reader_close(struct idr_reader *ir)
{
	if (ir == NULL) {
		return;
	}
	/*
	 *= REQ ID-12 (forgetting)
	 *# or before power-off, it deletes the random key
	 */
	if (idr_reader_forget(ir) != 0) {
		ml_warn("reader: could not clear the ID cache at shutdown");
	}
	(void)rc_ok(ir, CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0, 0, NULL, 0, NULL);
	ml_freezero(ir, sizeof(*ir));
}

#ifdef ML_TEST_HOOKS
void
idr_reader_test_remove_after(struct idr_reader *ir, int blocks)
{
	ir->remove_after = blocks;
}
#endif

/* ---------------------------------------------------------------- pre-read */

/*
 *= REQ ID-6 (pre-read)
 *# When a card answers the reader's polling, the reader reads the card's
 *# plaintext configuration ... and stores it in the secure chip if not
 *# already stored.
 */
static int
preread(struct idr_reader *ir)
{
	struct chipcmd cc;
	uint8_t cfg[IDC_CONFIG_MAX], ans[2];
	struct idc_config card;
	size_t n = 0, an = 0;
	int rr;
	int r;

	ir->card_gen = 0;
	ML_TRY(chipcmd_begin(&cc, ir->link, ir->cfg.card_slot));
	ML_TRY(chipcmd_ok(&cc, CLA_ISO, INS_GET_DATA, GD_CARD_CONFIG, 0, NULL,
	    0, 256, cfg, sizeof(cfg), &n));
	if ((rr = idc_config_decode(cfg, n, &card)) != 0) {
		ml_warn("reader: card configuration rejected: %s",
		    ml_errname(rr));
		r = ML_ERR_FORMAT;
		goto out;
	}
	ML_TRY(rc_ok(ir, CLA_PROP, INS_CACHE_PUT_CONFIG, 0, 0, cfg, n, 256, ans,
	    sizeof(ans), &an));
	ML_ENSURE(an == 2, ML_ERR_FORMAT);
	memcpy(ir->config, cfg, n);
	ir->config_len = n;
	ir->card = card;
	ir->card_gen = cc.generation;
	ir->forgotten = false;
	ml_debug("reader: pre-read card (slot %u, %s)", ans[0],
	    ans[1] ? "new" : "already stored");
	r = 0;
out:
	return r;
}

int
idr_reader_tick(struct idr_reader *ir)
{
	struct chiplink_slot_info si;
	uint64_t now = idr_now_ms();
	int r0;

	if ((r0 = chiplink_slot_info(ir->link, ir->cfg.card_slot, &si)) != 0) {
		return r0;
	}
	if (si.present) {
		ir->last_seen_ms = now;
		if (si.generation != ir->card_gen) {
			return preread(ir);
		}
		return 0;
	}
	ir->card_gen = 0;
	/*
	 *= REQ ID-9 (cache expiry)
	 *# If no card is seen for a set time after the upload, the reader
	 *# clears configuration and encrypted ID data from the secure chip.
	 *
	 *= REQ ID-12 (forgetting)
	 *# With no card for a set time, the reader clears the cached
	 *# plaintext; on that timeout ... it deletes the random key.
	 */
	if (!ir->forgotten && now - ir->last_seen_ms >= ir->cfg.idle_ms) {
		ml_info("reader: no card for %u ms: ID cache cleared",
		    ir->cfg.idle_ms);
		return idr_reader_forget(ir);
	}
	return 0;
}

/* ---------------------------------------------------------------- read */

struct cache_entry_view {
	uint8_t		 slot;
	const uint8_t	*data;
	size_t		 data_len;
	bool		 has_plain;
};

static int
parse_cache_get(const uint8_t *p, size_t n, struct cache_entry_view *ret)
{
	struct ml_rd rd = ML_RD_INIT(p, n), v;
	struct cache_entry_view e = { 0 };
	bool have_slot = false;
	uint32_t tag;
	uint8_t b;
	int r;

	while (ml_rd_left(&rd) > 0) {
		ML_TRY(ml_tlv_next(&rd, &tag, &v));
		switch (tag) {
		case TAG_CACHE_SLOT:
			ML_TRY(ml_rd_u8(&v, &e.slot));
			ML_TRY(ml_rd_end(&v));
			have_slot = true;
			break;
		case TAG_CACHE_DATA:
			e.data = ml_rd_ptr(&v);
			e.data_len = ml_rd_left(&v);
			break;
		case TAG_CACHE_HAS_PLAIN:
			ML_TRY(ml_rd_u8(&v, &b));
			ML_TRY(ml_rd_end(&v));
			e.has_plain = b != 0;
			break;
		default:
			break;		/* E1 config: we sent it */
		}
	}
	ML_ENSURE(have_slot && e.slot < CACHE_MAX_ENTRIES, ML_ERR_FORMAT);
	*ret = e;
	r = 0;
out:
	return r;
}

/* The card's encrypted ID data, READ BINARY in frame-sized blocks. */
static int
read_card_data(struct idr_reader *ir, uint8_t *buf, size_t cap,
    size_t *ret_len)
{
	struct chipcmd cc = { .link = ir->link, .slot = ir->cfg.card_slot,
	    .generation = ir->card_gen };
	uint16_t sw;
	size_t off = 0, n, blk;
	int blocks = 0;
	int rr;

	/* ID-6: the card's transport protocol says how big a frame may be */
	blk = ir->card.max_frame >= 258 ? 256 : (size_t)ir->card.max_frame - 2;
	for (;;) {
#ifdef ML_TEST_HOOKS
		if (ir->remove_after >= 0 && blocks == ir->remove_after) {
			if (chiplink_inproc_feed(ir->link, ir->cfg.card_slot,
			    NULL) != 0) {
				ml_warn("reader: test hook: cannot remove card");
			}
		}
#endif
		if (off >= 0x8000 || cap - off < blk) {
			return ML_ERR_TOO_LARGE;
		}
		if ((rr = chipcmd_send(&cc, CLA_ISO, INS_READ_BINARY,
		    (uint8_t)(off >> 8), (uint8_t)off, NULL, 0, (uint32_t)blk,
		    buf + off, cap - off, &n, &sw)) != 0) {
			return rr;
		}
		blocks++;
		if (sw == SW_WRONG_P1P2 && off > 0) {
			break;
		}
		if (sw != SW_OK) {
			return chipcmd_sw_err(sw);
		}
		off += n;
		if (n < blk) {
			break;
		}
	}
	if (off == 0) {
		return ML_ERR_NOT_FOUND;
	}
	*ret_len = off;
	return 0;
}

/* Still the same card in the field? */
static int
card_still_there(void *ctx)
{
	struct idr_reader *ir = ctx;
	struct chiplink_slot_info si;
	int r0;

	if ((r0 = chiplink_slot_info(ir->link, ir->cfg.card_slot, &si)) != 0) {
		return r0;
	}
	return si.present && si.generation == ir->card_gen ? 0 : ML_ERR_REMOVED;
}

/*
 *= REQ ID-11 (second read)
 *# A later read of the same card (same configuration) is answered from
 *# there, with no server round trip.
 *
 * 0 with ret_info filled; ML_ERR_NOT_FOUND when there is nothing usable
 * (gone, or unreadable: ask the server); other errors end the read.
 */
static int
read_cached_plain(struct idr_reader *ir, const struct cache_entry_view *ev,
    struct idc_info *ret_info)
{
	uint8_t *plain = NULL;
	size_t pn = 0;
	int r;

	ML_ENSURE(ev->has_plain, ML_ERR_NOT_FOUND);
	ML_ENSURE((plain = malloc(CACHE_MAX_DATA)) != NULL, ML_ERR_NOMEM);
	r = rc_ok(ir, CLA_PROP, INS_CACHE_GET_PLAIN, ev->slot, 0, NULL, 0,
	    CACHE_MAX_DATA, plain, CACHE_MAX_DATA, &pn);
	if (r == 0) {
		r = idc_info_decode(plain, pn, ret_info);
	}
	/* the chip or the link failing is an error; a plaintext that is gone
	 * or unreadable just means: ask the server again */
	if (r != 0 && r != ML_ERR_REMOVED && r != ML_ERR_IO &&
	    r != ML_ERR_NOMEM) {
		ml_warn("reader: cached information not usable (%s): asking "
		    "the server", ml_errname(r));
		r = ML_ERR_NOT_FOUND;
	}
out:
	ml_freezero(plain, CACHE_MAX_DATA);
	return r;
}

/*
 *= REQ ID-7 (secure upload)
 *# the reader gets the card's encrypted ID data (from the secure chip when
 *# cached for this configuration, else from the card, then caching it)
 *
 * *ret_data points into ev (chip cache) or into *ret_owned (read from the
 * card; the caller frees it, IDCARD_MAX_DATA bytes).
 */
static int
get_card_data(struct idr_reader *ir, const struct cache_entry_view *ev,
    const uint8_t **ret_data, size_t *ret_len, uint8_t **ret_owned,
    bool *ret_cached)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int r;

	if (ev->data != NULL) {
		*ret_data = ev->data;
		*ret_len = ev->data_len;
		*ret_cached = true;
		r = 0;
		goto out;
	}
	ML_ENSURE((buf = malloc(IDCARD_MAX_DATA)) != NULL, ML_ERR_NOMEM);
	ML_TRY(read_card_data(ir, buf, IDCARD_MAX_DATA, &n));
	/* never cache data from a card that left during the reading */
	ML_TRY(card_still_there(ir));
	ML_TRY(rc_ok(ir, CLA_PROP, INS_CACHE_PUT_DATA, ev->slot, 0, buf, n, 0,
	    NULL, 0, NULL));
	*ret_data = buf;
	*ret_len = n;
	*ret_owned = buf;
	*ret_cached = false;
	buf = NULL;
	r = 0;
out:
	ml_freezero(buf, IDCARD_MAX_DATA);
	return r;
}

int
idr_reader_read(struct idr_reader *ir, idr_connect_fn connect, void *cctx,
    const struct idr_faults *faults, struct idc_info *ret_info,
    struct idr_read_info *ret)
{
	struct idr_link link = { 0 };
	struct cache_entry_view ev;
	struct idr_upload_req req;
	struct idr_read_info ri;
	struct ml_wr info = ml_wr_dyn(CACHE_MAX_DATA);
	uint8_t *ans = NULL, *card_data = NULL;
	const uint8_t *data = NULL;
	size_t n = 0, data_len = 0;
	bool filled = false;
	int rr;
	int r;

	memset(&ri, 0, sizeof(ri));
	ML_ENSURE((ans = malloc(CHIP_ANSWER_MAX)) != NULL, ML_ERR_NOMEM);
	ML_TRY(idr_reader_tick(ir));
	ML_ENSURE(ir->card_gen != 0, ML_ERR_REMOVED);
	memcpy(ri.card_serial, ir->card.serial, sizeof(ri.card_serial));

	rr = rc_ok(ir, CLA_PROP, INS_CACHE_GET, 0, 0, ir->config, ir->config_len,
	    CHIP_ANSWER_MAX, ans, CHIP_ANSWER_MAX, &n);
	if (rr == ML_ERR_NOT_FOUND) {
		/* cleared since the pre-read (idle, or another card) */
		ML_TRY(preread(ir));
		rr = rc_ok(ir, CLA_PROP, INS_CACHE_GET, 0, 0, ir->config,
		    ir->config_len, CHIP_ANSWER_MAX, ans, CHIP_ANSWER_MAX, &n);
	}
	ML_TRY(rr);
	ML_TRY(parse_cache_get(ans, n, &ev));

	if ((rr = read_cached_plain(ir, &ev, ret_info)) == 0) {
		ri.from_cache = true;
		r = 0;
		goto out;
	}
	ML_ENSURE(rr == ML_ERR_NOT_FOUND, rr);
	ML_TRY(get_card_data(ir, &ev, &data, &data_len, &card_data,
	    &ri.data_cached));

	/*= REQ ID-1 (no SAM): the read asks the server (handshake) */
	ML_TRY(connect(cctx, &link));
	memset(&req, 0, sizeof(req));
	req.config = ir->config;
	req.config_len = ir->config_len;
	req.data = data;
	req.data_len = data_len;
	req.pkt_size = ir->cfg.pkt_size;
	req.per_record = ir->cfg.per_record;
	req.timeout_ms = ir->cfg.timeout_ms;
	req.faults = faults;
	req.check = card_still_there;
	req.check_ctx = ir;
	ML_TRY(idr_upload(&link, &req, &info, &ri.up));
	/* nothing is cached for a card that has left (or was swapped) */
	ML_TRY(card_still_there(ir));
	ML_TRY(idc_info_decode(info.p, info.len, ret_info));
	filled = true;
	ML_TRY(rc_ok(ir, CLA_PROP, INS_CACHE_PUT_PLAIN, ev.slot, 0, info.p,
	    info.len, 0, NULL, 0, NULL));
	r = 0;
out:
	if (r != 0 && filled) {
		idc_info_clear(ret_info);	/* untouched-or-wiped on failure */
	}
	if (link.close != NULL) {
		link.close(link.ctx);
	}
	if (ret != NULL) {
		if (r == 0) {
			*ret = ri;
		} else {
			ret->up = ri.up;
		}
	}
	ml_freezero(ans, CHIP_ANSWER_MAX);
	ml_freezero(card_data, IDCARD_MAX_DATA);
	ml_wr_free(&info);
	return r;
}

/* ---------------------------------------------------------------- key */

static int
ck_sign(void *ctx, const uint8_t digest[ML_SHA256_LEN],
    uint8_t ret_sig[ML_P256_SIG_LEN])
{
	struct idr_reader *ir = ctx;
	uint8_t d[2 + ML_SHA256_LEN], sig[ML_P256_SIG_LEN];
	size_t n = 0;
	int r;

	d[0] = (uint8_t)(ir->key_id >> 8);
	d[1] = (uint8_t)ir->key_id;
	memcpy(d + 2, digest, ML_SHA256_LEN);
	ML_TRY(rc_ok(ir, CLA_PROP, INS_SIGN, 0x9E, 0x9A, d, sizeof(d), 256,
	    sig, sizeof(sig), &n));
	ML_ENSURE(n == ML_P256_SIG_LEN, ML_ERR_FORMAT);
	memcpy(ret_sig, sig, sizeof(sig));
	r = 0;
out:
	return r;
}

static int
ck_ecdh(void *ctx, const uint8_t peer[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	struct idr_reader *ir = ctx;
	uint8_t x[ML_P256_SECRET_LEN];
	size_t n = 0;
	int r;

	ML_TRY(rc_ok(ir, CLA_PROP, INS_ECDH, (uint8_t)(ir->key_id >> 8),
	    (uint8_t)ir->key_id, peer, ML_P256_PUB_LEN, 256, x, sizeof(x),
	    &n));
	ML_ENSURE(n == sizeof(x), ML_ERR_FORMAT);
	memcpy(ret_secret, x, sizeof(x));
	r = 0;
out:
	ml_wipe(x, sizeof(x));
	return r;
}

static int
ck_random(void *ctx, uint8_t *buf, size_t n)
{
	struct idr_reader *ir = ctx;
	size_t k, got;
	int r;

	for (k = 0; k < n; k += got) {
		size_t want = n - k > 256 ? 256 : n - k;

		ML_TRY(rc_ok(ir, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0,
		    (uint32_t)want, buf + k, n - k, &got));
		ML_ENSURE(got == want, ML_ERR_FORMAT);
	}
	r = 0;
out:
	return r;
}

static const struct key_class chip_key_class = {
	.name = "reader-chip",
	.sign = ck_sign,
	.ecdh = ck_ecdh,
	.random = ck_random,
};

int
idr_reader_key(struct idr_reader *ir, struct key *ret)
{
	uint8_t *list = NULL;
	struct ml_rd rd;
	size_t n = 0;
	uint16_t id;
	uint8_t cls, flags;
	bool found = false;
	int r;

	ML_ENSURE((list = malloc(CHIP_ANSWER_MAX)) != NULL, ML_ERR_NOMEM);
	ML_TRY(rc_ok(ir, CLA_PROP, INS_LIST_OBJECTS, 0, 0, NULL, 0,
	    CHIP_ANSWER_MAX, list, CHIP_ANSWER_MAX, &n));
	rd = ML_RD_INIT(list, n);
	while (ml_rd_left(&rd) > 0 && !found) {
		ML_TRY(ml_rd_u16be(&rd, &id));
		ML_TRY(ml_rd_u8(&rd, &cls));
		ML_TRY(ml_rd_u8(&rd, &flags));
		ML_TRY(ml_rd_bytes(&rd, 2, NULL));
		if (cls == OBJ_CLASS_PRIVKEY && (flags & OBJ_F_SIGN) != 0) {
			ir->key_id = id;
			found = true;
		}
	}
	ML_ENSURE(found, ML_ERR_NOT_FOUND);
	key_init(ret, &chip_key_class, ir, NULL);
	r = 0;
out:
	free(list);
	return r;
}

int
idr_reader_genkey(struct idr_reader *ir, uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	static const uint8_t empty[4] = { 0, 0, 0, 0 };	/* lv16() lv16() */
	uint8_t ans[2 + 2 + ML_P256_PUB_LEN];
	size_t n = 0;
	int r;

	ML_TRY(rc_ok(ir, CLA_PROP, INS_GEN_KEYPAIR, GENKEY_NORMAL, 0, empty,
	    sizeof(empty), 256, ans, sizeof(ans), &n));
	ML_ENSURE(n == sizeof(ans), ML_ERR_FORMAT);
	memcpy(ret_pub, ans + 4, ML_P256_PUB_LEN);
	r = 0;
out:
	return r;
}

const char *
idr_reader_serial(const struct idr_reader *ir)
{
	return ir->serial;
}
