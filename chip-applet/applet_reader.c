/*
 * Reader secure chip profile (ID-14): the ID-card cache of ID-6, ID-7,
 * ID-9 and ID-11..ID-13.  Keys, certificates, sign, ECDH, PINs and
 * volatile secrets are the core's generic commands (chip.c); this file
 * adds only the cache commands.
 *
 * The cache lives in RAM only, in struct chip (c->cache, c->cache_key),
 * and is never serialized into the store: power-off (chip_close ->
 * chip_reader_forget) loses it together with the random key.  Only the
 * cache mode is persistent.
 *
 *= REQ ID-9 (cache expiry)
 *# The cache may be volatile (gone at power-off).
 *
 *= REQ ID-12 (forgetting)
 *# on that timeout, or before power-off, it deletes the random key.
 *
 * Access: every command that puts or gets cache contents needs the user
 * PIN (LOGIN_USER), not only the plaintext ones.  The reader host logs in
 * once at start, so this costs nothing in the flow, and it keeps another
 * process on the same PC/SC reader from reading which cards were seen
 * (configurations are card serials), from swapping a card's encrypted data
 * or from planting a configuration.  CACHE CLEAR alone needs no login:
 * forgetting can never leak anything, and a host that lost its login (a
 * warm reset) must still be able to honour ID-9/ID-12 before power-off.
 * CACHE MODE is a setting of the device and needs the SO.
 *
 * Commands (CLA 80; states: BLANK = INIT TOKEN not done, READY = done):
 *
 *	INS name		states		login	data -> response
 *	90  CACHE MODE		READY		SO	P1 1 multi, 2 single
 *	92  CACHE PUT CONFIG	READY		user	config -> slot, new
 *	94  CACHE PUT DATA	READY		user	P1 slot; enc. ID data
 *	96  CACHE GET		READY		user	config -> E0 E1 [E2] E3
 *	98  CACHE PUT PLAIN	READY		user	P1 slot; plaintext
 *	9A  CACHE GET PLAIN	READY		user	P1 slot -> plaintext
 *	9C  CACHE CLEAR		BLANK|READY	-	P1 0 all, 1 plain+key
 *
 * Status words: 6A86 bad P1/P2 (slot out of range), 6A88 nothing cached
 * for that config/slot, 6700 empty or oversized config, 6A84 data or
 * plaintext over CACHE_MAX_DATA, 6982 not logged in.
 */
#include <stdlib.h>
#include <string.h>

#include "ml_tlv.h"
#include "ml_wipe.h"

#include "chip_int.h"

enum reader_state {
	READER_BLANK	= 1 << 0,	/* not initialized (no SO PIN) */
	READER_READY	= 1 << 1,	/* INIT TOKEN done */
};
#define READER_ANY	(READER_BLANK | READER_READY)

static const char *const reader_state_names[] = { "BLANK", "READY" };

static unsigned
reader_state(const struct chip *c)
{
	return (c->st.flags & INFO_F_INITIALIZED) != 0 ? READER_READY :
	    READER_BLANK;
}

/* The effective mode: a chip that was never set is multi-card (emb. 6). */
static uint8_t
reader_mode(const struct chip *c)
{
	return c->st.cache_mode == CACHE_MODE_SINGLE ? CACHE_MODE_SINGLE :
	    CACHE_MODE_MULTI;
}

/* Drop the plaintext sealed under the random key (ID-11/ID-12). */
static void
entry_forget_plain(struct cache_entry *e)
{
	ml_freezero(e->plain_ct, e->plain_ct_len);
	e->plain_ct = NULL;
	e->plain_ct_len = 0;
	ml_wipe(e->plain_iv, sizeof(e->plain_iv));
	ml_wipe(e->plain_tag, sizeof(e->plain_tag));
}

static void
entry_forget(struct cache_entry *e)
{
	entry_forget_plain(e);
	ml_freezero(e->data, e->data_len);
	ml_wipe(e, sizeof(*e));		/* used = false, config gone */
}

/*
 * all: the whole cache (ID-9, ID-13 single-card switch, power-off) and the
 * random key; !all: every plaintext and the random key (ID-12).  Safe on
 * any chip kind and on a chip that never cached anything.
 */
void
chip_reader_forget(struct chip *c, bool all)
{
	size_t i;

	if (c == NULL) {
		return;
	}
	for (i = 0; i < CACHE_MAX_ENTRIES; i++) {
		if (all) {
			entry_forget(&c->cache[i]);
		} else {
			entry_forget_plain(&c->cache[i]);
		}
	}
	ml_wipe(c->cache_key, sizeof(c->cache_key));
	c->has_cache_key = false;
	if (all) {
		c->cache_seq = 0;
	}
}

/* Slot holding exactly this configuration, or -1. */
static int
cache_find(const struct chip *c, const uint8_t *cfg, size_t n)
{
	size_t i;

	for (i = 0; i < CACHE_MAX_ENTRIES; i++) {
		const struct cache_entry *e = &c->cache[i];

		if (e->used && e->config_len == n &&
		    memcmp(e->config, cfg, n) == 0) {
			return (int)i;
		}
	}
	return -1;
}

/* A free slot, else the oldest one, emptied. */
static size_t
cache_alloc(struct chip *c)
{
	size_t i, victim = 0;

	for (i = 0; i < CACHE_MAX_ENTRIES; i++) {
		if (!c->cache[i].used) {
			return i;
		}
		if (c->cache[i].seq < c->cache[victim].seq) {
			victim = i;
		}
	}
	entry_forget(&c->cache[victim]);
	return victim;
}

/* The used entry named by P1, or a status word: 6A86 range, 6A88 empty. */
static int
slot_entry(struct chip *c, const struct apdu *a, struct cache_entry **ret_e)
{
	if (a->p1 >= CACHE_MAX_ENTRIES || a->p2 != 0) {
		return SW_INCORRECT_P1P2;
	}
	if (!c->cache[a->p1].used) {
		return SW_DATA_NOT_FOUND;
	}
	*ret_e = &c->cache[a->p1];
	return 0;
}

/* 80 90 P1 00: P1 = CACHE_MODE_MULTI or CACHE_MODE_SINGLE (SO). */
static int
reader_cache_mode(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	bool change;
	int r = ML_ERR_INTERNAL;

	ML_TRY(chip_need_login(c, LOGIN_SO));
	ML_ENSURE((a->p1 == CACHE_MODE_MULTI || a->p1 == CACHE_MODE_SINGLE) &&
	    a->p2 == 0, SW_INCORRECT_P1P2);
	ML_ENSURE(ml_rd_left(&a->data) == 0, SW_WRONG_LENGTH);
	change = a->p1 != reader_mode(c);
	if (c->st.cache_mode != a->p1) {
		c->st.cache_mode = a->p1;
		ML_TRY(chip_commit(c));
	}
	if (change) {
		/* entries made under the other mode's rules go */
		chip_reader_forget(c, true);
	}
	r = 0;
out:
	return r;
}

/*
 * 80 92 00 00 Lc config -> slot(1) new(1).
 *
 *= REQ ID-6 (pre-read)
 *# stores it in the secure chip if not already stored
 *
 *= REQ ID-13 (cache modes)
 *# Multi-card: configuration and data stored associated, many cards at
 *# once (embodiment 6). Single-card: one card only; a different card
 *# clears the store first (embodiment 7).
 */
static int
reader_cache_put_config(struct chip *c, const struct apdu *a,
    struct ml_wr *resp)
{
	const uint8_t *cfg = ml_rd_ptr(&a->data);
	size_t n = ml_rd_left(&a->data), slot;
	struct cache_entry *e;
	uint8_t *ans;
	int found;
	int r = ML_ERR_INTERNAL;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	ML_ENSURE(a->p1 == 0 && a->p2 == 0, SW_INCORRECT_P1P2);
	ML_ENSURE(n >= 1 && n <= CACHE_MAX_CONFIG, SW_WRONG_LENGTH);
	ML_TRY(ml_wr_reserve(resp, 2, &ans));
	if ((found = cache_find(c, cfg, n)) >= 0) {
		ans[0] = (uint8_t)found;
		ans[1] = 0;
		r = 0;
		goto out;
	}
	if (reader_mode(c) == CACHE_MODE_SINGLE) {
		chip_reader_forget(c, true);
	}
	slot = cache_alloc(c);
	e = &c->cache[slot];
	memcpy(e->config, cfg, n);
	e->config_len = n;
	e->seq = c->cache_seq++;
	e->used = true;
	ans[0] = (uint8_t)slot;
	ans[1] = 1;
	r = 0;
out:
	return r;
}

/*
 * 80 94 slot 00 Lc data: the card's encrypted ID data for that slot
 * (replaces what was there).
 *
 *= REQ ID-7 (secure upload)
 *# from the secure chip when cached for this configuration, else from the
 *# card, then caching it
 */
static int
reader_cache_put_data(struct chip *c, const struct apdu *a,
    struct ml_wr *resp)
{
	size_t n = ml_rd_left(&a->data);
	struct cache_entry *e = NULL;
	uint8_t *copy = NULL;
	int r = ML_ERR_INTERNAL;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	ML_TRY(slot_entry(c, a, &e));
	ML_ENSURE(n >= 1, SW_WRONG_LENGTH);
	ML_ENSURE(n <= CACHE_MAX_DATA, SW_NOT_ENOUGH_MEMORY);
	ML_ENSURE((copy = malloc(n)) != NULL, ML_ERR_NOMEM);
	memcpy(copy, ml_rd_ptr(&a->data), n);
	ml_freezero(e->data, e->data_len);
	e->data = copy;
	e->data_len = n;
	copy = NULL;
	r = 0;
out:
	return r;
}

/* 80 96 00 00 Lc config Le -> E0 slot, E1 config, [E2 data], E3 has_plain. */
static int
reader_cache_get(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	const struct cache_entry *e;
	size_t n = ml_rd_left(&a->data);
	int slot;
	int r = ML_ERR_INTERNAL;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	ML_ENSURE(a->p1 == 0 && a->p2 == 0, SW_INCORRECT_P1P2);
	ML_ENSURE(n >= 1 && n <= CACHE_MAX_CONFIG, SW_WRONG_LENGTH);
	ML_ENSURE((slot = cache_find(c, ml_rd_ptr(&a->data), n)) >= 0,
	    SW_DATA_NOT_FOUND);
	e = &c->cache[slot];
	ML_TRY(ml_tlv_put_u8(resp, TAG_CACHE_SLOT, (uint8_t)slot));
	ML_TRY(ml_tlv_put(resp, TAG_CACHE_CONFIG, e->config, e->config_len));
	if (e->data != NULL) {
		ML_TRY(ml_tlv_put(resp, TAG_CACHE_DATA, e->data, e->data_len));
	}
	ML_TRY(ml_tlv_put_u8(resp, TAG_CACHE_HAS_PLAIN,
	    e->plain_ct != NULL && c->has_cache_key));
	r = 0;
out:
	return r;
}

/*
 * 80 98 slot 00 Lc plaintext: keep the decrypted ID information sealed
 * under the random key, AES-256-GCM with a fresh IV and the entry's
 * configuration as AAD (so a sealed plaintext cannot be moved to another
 * card's entry).  The plaintext is read straight from the command buffer
 * and not copied.
 *
 *= REQ ID-11 (second read)
 *# makes a random key, encrypts the information under it and stores it in
 *# the secure chip
 */
static int
reader_cache_put_plain(struct chip *c, const struct apdu *a,
    struct ml_wr *resp)
{
	size_t n = ml_rd_left(&a->data);
	struct cache_entry *e = NULL;
	uint8_t iv[ML_GCM_IV_LEN], tag[ML_GCM_TAG_LEN];
	uint8_t *ct = NULL;
	int r = ML_ERR_INTERNAL;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	ML_TRY(slot_entry(c, a, &e));
	ML_ENSURE(n >= 1, SW_WRONG_LENGTH);
	ML_ENSURE(n <= CACHE_MAX_DATA, SW_NOT_ENOUGH_MEMORY);
	ML_ENSURE((ct = malloc(n)) != NULL, ML_ERR_NOMEM);
	if (!c->has_cache_key) {
		ML_TRY(ml_rand(c->cache_key, sizeof(c->cache_key)));
		c->has_cache_key = true;
	}
	ML_TRY(ml_rand(iv, sizeof(iv)));
	ML_TRY(ml_gcm_seal(c->cache_key, iv, e->config, e->config_len,
	    ml_rd_ptr(&a->data), n, ct, tag));
	entry_forget_plain(e);
	e->plain_ct = ct;
	e->plain_ct_len = n;
	memcpy(e->plain_iv, iv, sizeof(iv));
	memcpy(e->plain_tag, tag, sizeof(tag));
	ct = NULL;
	r = 0;
out:
	if (r != 0 && !c->has_cache_key) {
		ml_wipe(c->cache_key, sizeof(c->cache_key));
	}
	ml_freezero(ct, n);
	return r;
}

/* 80 9A slot 00 Le -> plaintext (6A88 if none, or the key is gone). */
static int
reader_cache_get_plain(struct chip *c, const struct apdu *a,
    struct ml_wr *resp)
{
	struct cache_entry *e = NULL;
	uint8_t *pt = NULL;
	size_t n = 0;
	int r = ML_ERR_INTERNAL;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	ML_TRY(slot_entry(c, a, &e));
	ML_ENSURE(e->plain_ct != NULL && c->has_cache_key, SW_DATA_NOT_FOUND);
	n = e->plain_ct_len;
	ML_ENSURE((pt = malloc(n)) != NULL, ML_ERR_NOMEM);
	ML_TRY(ml_gcm_open(c->cache_key, e->plain_iv, e->config,
	    e->config_len, e->plain_ct, n, e->plain_tag, pt));
	ML_TRY(ml_wr_bytes(resp, pt, n));
	r = 0;
out:
	ml_freezero(pt, n);
	return r;
}

/*
 * 80 9C P1 00: P1 0 forgets everything, P1 1 the plaintexts and the
 * random key only (the configurations and encrypted data stay).
 *
 *= REQ ID-9 (cache expiry)
 *# the reader clears configuration and encrypted ID data from the secure
 *# chip
 *
 *= REQ ID-12 (forgetting)
 *# With no card for a set time, the reader clears the cached plaintext
 */
static int
reader_cache_clear(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(a->p1 <= 1 && a->p2 == 0, SW_INCORRECT_P1P2);
	ML_ENSURE(ml_rd_left(&a->data) == 0, SW_WRONG_LENGTH);
	chip_reader_forget(c, a->p1 == 0);
	r = 0;
out:
	return r;
}

/* A warm reset keeps the cache (it is RAM that stays powered); the lost
 * login already gates access to it. */
static void
reader_reset(struct chip *c)
{
}

static const struct ins_entry reader_ins[] = {
	{ CLA_PROP, INS_CACHE_MODE,	  READER_READY, reader_cache_mode,
	  "CACHE MODE" },
	{ CLA_PROP, INS_CACHE_PUT_CONFIG, READER_READY, reader_cache_put_config,
	  "CACHE PUT CONFIG" },
	{ CLA_PROP, INS_CACHE_PUT_DATA,	  READER_READY, reader_cache_put_data,
	  "CACHE PUT DATA" },
	{ CLA_PROP, INS_CACHE_GET,	  READER_READY, reader_cache_get,
	  "CACHE GET" },
	{ CLA_PROP, INS_CACHE_PUT_PLAIN,  READER_READY, reader_cache_put_plain,
	  "CACHE PUT PLAIN" },
	{ CLA_PROP, INS_CACHE_GET_PLAIN,  READER_READY, reader_cache_get_plain,
	  "CACHE GET PLAIN" },
	{ CLA_PROP, INS_CACHE_CLEAR,	  READER_ANY,	reader_cache_clear,
	  "CACHE CLEAR" },
};

const struct chip_profile chip_profile_reader = {
	.kind = CHIP_KIND_READER,
	.name = "reader",
	.ins = reader_ins,
	.nins = ML_NELEM(reader_ins),
	.state = reader_state,
	.state_names = reader_state_names,
	.nstates = ML_NELEM(reader_state_names),
	.reset = reader_reset,
};
