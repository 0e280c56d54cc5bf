/*
 * The mintline card OS core: power cycle, the one dispatcher, GET RESPONSE
 * chaining, and the commands every chip kind shares (SELECT, GET DATA,
 * GET CHALLENGE, PINs, INIT TOKEN, objects, key generation, sign, ECDH,
 * volatile secret keys).  Chip kinds are profiles (applet_*.c): an INS
 * table plus handlers, looked up before the core table.
 *
 *= REQ ID-14 (secure chip)
 *# Holds PKI certificates and keys and does the crypto; private keys never
 *# leave it.
 */
#include <stdlib.h>
#include <string.h>

#include "ml_log.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "chip_int.h"
#include "chip_state.h"

#define CHIP_VERSION_MAJOR	1
#define CHIP_VERSION_MINOR	0

static const uint8_t aid_prefix[CHIP_AID_PREFIX_LEN] = CHIP_AID_PREFIX;

enum chip_kind
chip_kind_from_name(const char *name)
{
	if (strcmp(name, "reader") == 0) {
		return CHIP_KIND_READER;
	}
	if (strcmp(name, "note") == 0) {
		return CHIP_KIND_NOTE;
	}
	if (strcmp(name, "idcard") == 0) {
		return CHIP_KIND_IDCARD;
	}
	if (strcmp(name, "sam") == 0) {
		return CHIP_KIND_SAM;
	}
	return 0;
}

const char *
chip_kind_name(enum chip_kind kind)
{
	switch (kind) {
	case CHIP_KIND_READER:
		return "reader";
	case CHIP_KIND_NOTE:
		return "note";
	case CHIP_KIND_IDCARD:
		return "idcard";
	case CHIP_KIND_SAM:
		return "sam";
	}
	return "unknown";
}

const struct chip_profile *
chip_profile_for(enum chip_kind kind)
{
	switch (kind) {
	case CHIP_KIND_READER:
		return &chip_profile_reader;
	case CHIP_KIND_NOTE:
		return &chip_profile_note;
	case CHIP_KIND_IDCARD:
		return &chip_profile_idcard;
	case CHIP_KIND_SAM:
		return &chip_profile_sam;
	}
	return NULL;
}

uint16_t
ml_err_to_sw(int r)
{
	switch (r) {
	case ML_OK:
		return SW_OK;
	case ML_ERR_SHORT:
	case ML_ERR_TRAILING:
	case ML_ERR_TOO_LARGE:
		return SW_WRONG_LENGTH;
	case ML_ERR_FORMAT:
	case ML_ERR_ARG:
	case ML_ERR_CRYPTO:
		return SW_WRONG_DATA;
	case ML_ERR_STATE:
	case ML_ERR_EXISTS:
		return SW_CONDITIONS_NOT_SATISFIED;
	case ML_ERR_AUTH:
	case ML_ERR_PERM:
	case ML_ERR_REJECTED:
		return SW_SECURITY_NOT_SATISFIED;
	case ML_ERR_LOCKED:
		return SW_AUTH_BLOCKED;
	case ML_ERR_NOT_FOUND:
		return SW_DATA_NOT_FOUND;
	case ML_ERR_FULL:
	case ML_ERR_NOMEM:
		return SW_NOT_ENOUGH_MEMORY;
	case ML_ERR_IO:
		return SW_MEMORY_FAILURE;
	case ML_ERR_UNSUPPORTED:
		return SW_FUNC_NOT_SUPPORTED;
	}
	return SW_UNKNOWN;
}

/* ---- objects ---- */

void
chip_obj_clear(struct chip_obj *o)
{
	ml_freezero(o->attrs, o->attrs_len);
	ml_p256_key_free(o->key);
	ml_wipe(o, sizeof(*o));
}

struct chip_obj *
chip_obj_find(struct chip *c, uint16_t id)
{
	size_t i;

	for (i = 0; i < c->st.nobjs; i++) {
		if (c->st.objs[i].id == id) {
			return &c->st.objs[i];
		}
	}
	return NULL;
}

struct chip_obj *
chip_chipkey(struct chip *c)
{
	size_t i;

	for (i = 0; i < c->st.nobjs; i++) {
		if (c->st.objs[i].cls == OBJ_CLASS_PRIVKEY &&
		    (c->st.objs[i].flags & OBJ_F_CHIPKEY) != 0) {
			return &c->st.objs[i];
		}
	}
	return NULL;
}

int
chip_obj_key(struct chip_obj *o, const struct ml_p256_key **ret)
{
	int r;

	if (!o->has_priv) {
		return ML_ERR_STATE;
	}
	if (o->key == NULL && (r = ml_p256_key_from_priv(o->priv, &o->key)) != 0) {
		return r;
	}
	*ret = o->key;
	return 0;
}

static size_t
state_size_estimate(const struct chip_state *st)
{
	size_t n = 512, i;

	for (i = 0; i < st->nobjs; i++) {
		n += 128 + st->objs[i].attrs_len;
	}
	return n + st->feature_len + st->card_data_len;
}

static int
obj_append(struct chip *c, struct chip_obj *o)
{
	struct chip_obj *no;

	if (c->st.nobjs >= OBJ_MAX_COUNT ||
	    state_size_estimate(&c->st) + o->attrs_len + 256 > STORE_MAX_PAYLOAD) {
		return ML_ERR_FULL;
	}
	if ((no = realloc(c->st.objs, (c->st.nobjs + 1) * sizeof(*no))) == NULL) {
		return ML_ERR_NOMEM;
	}
	c->st.objs = no;
	c->st.objs[c->st.nobjs++] = *o;
	return 0;
}

static uint16_t
obj_next_id(struct chip *c)
{
	uint16_t id;

	do {
		id = c->st.next_id++;
		if (c->st.next_id == 0 || c->st.next_id == 0xffff) {
			c->st.next_id = 1;
		}
	} while (id == 0 || chip_obj_find(c, id) != NULL);
	return id;
}

static void
obj_remove(struct chip *c, struct chip_obj *o)
{
	size_t i = (size_t)(o - c->st.objs);

	chip_obj_clear(o);
	memmove(&c->st.objs[i], &c->st.objs[i + 1],
	    (c->st.nobjs - i - 1) * sizeof(*o));
	c->st.nobjs--;
}

/* ---- commit ---- */

static int
chip_snapshot(struct chip *c, struct ml_wr *w)
{
	return chip_state_serialize(&c->st, w);
}

/*
 * Serialize and commit.  On failure RAM is rolled back to the last state
 * that reached the store, so that RAM never claims what flash does not hold.
 */
int
chip_commit(struct chip *c)
{
	struct ml_wr w = ml_wr_dyn(STORE_MAX_PAYLOAD);
	uint8_t *old = NULL;
	size_t old_len = 0;
	struct chip_state st;
	int r;

	if (c->dead) {
		return ML_ERR_IO;
	}
	if ((r = chip_snapshot(c, &w)) != 0 ||
	    (r = store_commit(c->store, w.p, w.len)) != 0) {
		ml_warn("chip %s: commit failed: %s", c->st.serial,
		    ml_strerror(r));
		/*
		 * Roll RAM back to the last committed copy, whatever failed.
		 * If even that cannot be done, the chip refuses everything
		 * (6581) until it is powered again and reloads its store.
		 */
		if (c->last != NULL &&
		    chip_state_parse(c->last, c->last_len, &st) == 0) {
			chip_state_clear(&c->st);
			c->st = st;
		} else {
			c->dead = true;
		}
		if (r != ML_ERR_TOO_LARGE && r != ML_ERR_NOMEM) {
			r = ML_ERR_IO;
		}
		goto out;
	}
	old = c->last;
	old_len = c->last_len;
	c->last = w.p;
	c->last_len = w.len;
	w = ml_wr_dyn(0);	/* ownership moved to c->last */
	r = 0;
out:
	ml_freezero(old, old_len);
	ml_wr_free(&w);
	return r;
}

int
chip_need_login(const struct chip *c, enum chip_login who)
{
	return c->login == who ? 0 : ML_ERR_PERM;
}

/* ---- power ---- */

static void
chip_make_atr(struct chip *c)
{
	/*
	 * T=1 ATR: TS 3B, T0 = F8 (TA1..TD1 absent except TD1? no): keep a
	 * simple direct-convention ATR with historical bytes "mintline" + kind.
	 */
	static const uint8_t base[] = { 0x3B, 0x8A, 0x80, 0x01 };
	static const char hist[] = "mintline";
	uint8_t tck = 0;
	size_t i, n = 0;

	memcpy(c->atr, base, sizeof(base));
	n = sizeof(base);
	memcpy(c->atr + n, hist, 8);
	n += 8;
	c->atr[n++] = (uint8_t)c->st.kind;
	c->atr[n++] = CHIP_VERSION_MAJOR;
	for (i = 1; i < n; i++) {
		tck ^= c->atr[i];
	}
	c->atr[n++] = tck;
	c->atr_len = n;
}

int
chip_manufacture(const char *path, enum chip_kind kind, const char *serial)
{
	struct chip_state st = { 0 };
	struct ml_wr w = ml_wr_dyn(STORE_MAX_PAYLOAD);
	size_t n, i;
	int r;

	ML_ENSURE(chip_profile_for(kind) != NULL, ML_ERR_ARG);
	ML_ENSURE(serial != NULL, ML_ERR_ARG);
	n = strlen(serial);
	ML_ENSURE(n > 0 && n <= CHIP_SERIAL_LEN, ML_ERR_ARG);
	for (i = 0; i < n; i++) {
		ML_ENSURE(serial[i] > 0x20 && serial[i] < 0x7f, ML_ERR_ARG);
	}
	st.kind = kind;
	/* Fixed width, space padded: token labels stay prefix-free. */
	memset(st.serial, ' ', CHIP_SERIAL_LEN);
	memcpy(st.serial, serial, n);
	st.serial[CHIP_SERIAL_LEN] = '\0';
	st.user_pin.max_tries = PIN_MAX_TRIES;
	st.user_pin.tries_left = PIN_MAX_TRIES;
	st.so_pin.max_tries = SO_PIN_MAX_TRIES;
	st.so_pin.tries_left = SO_PIN_MAX_TRIES;
	st.next_id = 1;
	if (kind == CHIP_KIND_READER) {
		st.cache_mode = CACHE_MODE_MULTI;
	}
	ML_TRY(chip_state_serialize(&st, &w));
	ML_TRY(store_create(path, w.p, w.len));
	r = 0;
out:
	ml_wr_free(&w);
	return r;
}

int
chip_open(const char *path, struct chip **ret_chip)
{
	struct chip *c = NULL;
	uint8_t *payload = NULL;
	size_t len = 0;
	int r;

	ML_TRY(ml_ossl_init());
	ML_ENSURE((c = calloc(1, sizeof(*c))) != NULL, ML_ERR_NOMEM);
	ML_ENSURE((c->path = strdup(path)) != NULL, ML_ERR_NOMEM);
	ML_TRY(store_open(path, &c->store, &payload, &len));
	ML_TRY(chip_state_parse(payload, len, &c->st));
	c->last = payload;
	c->last_len = len;
	payload = NULL;
	chip_make_atr(c);
	*ret_chip = c;
	c = NULL;
	r = 0;
out:
	ml_freezero(payload, len);
	chip_close(c);
	return r;
}

static void
chip_ram_reset(struct chip *c)
{
	const struct chip_profile *p = chip_profile_for(c->st.kind);

	c->selected = false;
	c->login = LOGIN_NONE;
	ml_freezero(c->pending, c->pending_len);
	c->pending = NULL;
	c->pending_len = c->pending_off = 0;
	if (p != NULL && p->reset != NULL) {
		p->reset(c);
	}
}

void
chip_reset(struct chip *c)
{
	chip_ram_reset(c);
}

void
chip_close(struct chip *c)
{
	size_t i;

	if (c == NULL) {
		return;
	}
	chip_ram_reset(c);
	if (c->st.kind == CHIP_KIND_READER) {
		chip_reader_forget(c, true);	/* ID-9, ID-12: power-off */
	}
	for (i = 0; i < CHIP_MAX_SECRETS; i++) {
		ml_wipe(&c->secrets[i], sizeof(c->secrets[i]));
	}
	chip_state_clear(&c->st);
	ml_freezero(c->last, c->last_len);
	store_close(c->store);
	free(c->path);
	ml_freezero(c, sizeof(*c));
}

enum chip_kind
chip_kind(const struct chip *c)
{
	return c->st.kind;
}

const char *
chip_serial(const struct chip *c)
{
	return c->st.serial;
}

const uint8_t *
chip_atr(const struct chip *c, size_t *ret_len)
{
	*ret_len = c->atr_len;
	return c->atr;
}

#ifdef ML_TEST_HOOKS
void
chip_test_cut_after(struct chip *c, long k)
{
	store_test_cut_after(c->store, k);
}
#endif

/* ---- PIN handling ---- */

static int
pin_hash(const uint8_t salt[PIN_SALT_LEN], const uint8_t *pin, size_t n,
    uint8_t ret[ML_SHA256_LEN])
{
	uint8_t buf[PIN_SALT_LEN + PIN_MAX_LEN];
	int r;

	memcpy(buf, salt, PIN_SALT_LEN);
	memcpy(buf + PIN_SALT_LEN, pin, n);
	r = ml_sha256(buf, PIN_SALT_LEN + n, ret);
	ml_wipe(buf, sizeof(buf));
	return r;
}

static int
pin_set(struct chip_pin *p, const uint8_t *pin, size_t n)
{
	int r;

	if (n < PIN_MIN_LEN || n > PIN_MAX_LEN) {
		return ML_ERR_ARG;
	}
	if ((r = ml_rand(p->salt, sizeof(p->salt))) != 0 ||
	    (r = pin_hash(p->salt, pin, n, p->hash)) != 0) {
		return r;
	}
	p->set = true;
	p->tries_left = p->max_tries;
	return 0;
}

/*
 * Check a PIN against p with the retry counter.  The counter is decremented
 * and committed BEFORE the comparison, so that cutting power after a wrong
 * guess cannot save a try; a right PIN restores it (a second commit, only
 * when it was not already full).
 * Returns 0, SW 63Cx (wrong, x tries left), ML_ERR_LOCKED.
 */
static int
pin_check(struct chip *c, struct chip_pin *p, const uint8_t *pin, size_t n)
{
	uint8_t h[ML_SHA256_LEN];
	bool ok;
	int r;

	if (!p->set) {
		return ML_ERR_STATE;
	}
	if (p->tries_left == 0) {
		return ML_ERR_LOCKED;
	}
	if (n < PIN_MIN_LEN || n > PIN_MAX_LEN) {
		ok = false;
	} else {
		if ((r = pin_hash(p->salt, pin, n, h)) != 0) {
			return r;
		}
		ok = ml_ct_eq(h, p->hash, sizeof(h));
		ml_wipe(h, sizeof(h));
	}
	p->tries_left--;
	if ((r = chip_commit(c)) != 0) {
		return r;
	}
	if (!ok) {
		if (p->tries_left == 0) {
			return ML_ERR_LOCKED;
		}
		return SW_WARN_PIN_TRIES(p->tries_left);
	}
	p->tries_left = p->max_tries;
	return chip_commit(c);
}

static struct chip_pin *
pin_ref(struct chip *c, uint8_t p2)
{
	if (p2 == PIN_USER) {
		return &c->st.user_pin;
	}
	if (p2 == PIN_SO) {
		return &c->st.so_pin;
	}
	return NULL;
}

/* 00 20 00 P2 [Lc PIN] */
static int
core_verify(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct chip_pin *p;
	enum chip_login who = (a->p2 == PIN_SO) ? LOGIN_SO : LOGIN_USER;
	int r;

	if (a->p1 != 0 || (p = pin_ref(c, a->p2)) == NULL) {
		return SW_INCORRECT_P1P2;
	}
	if (!p->set) {
		return SW_DATA_NOT_FOUND;	/* no PIN to verify yet */
	}
	if (ml_rd_left(&a->data) == 0) {	/* status query */
		if (c->login == who) {
			return 0;
		}
		return p->tries_left == 0 ? SW_AUTH_BLOCKED :
		    SW_WARN_PIN_TRIES(p->tries_left);
	}
	c->login = LOGIN_NONE;
	r = pin_check(c, p, ml_rd_ptr(&a->data), ml_rd_left(&a->data));
	if (r == 0) {
		c->login = who;
	}
	return r;
}

/* 00 24 00 P2 Lc lv8(old) lv8(new) */
static int
core_change_pin(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct ml_rd rd = a->data, oldp, newp;
	struct chip_pin *p;
	int r;

	if (a->p1 != 0 || (p = pin_ref(c, a->p2)) == NULL) {
		return SW_INCORRECT_P1P2;
	}
	ML_TRY(ml_rd_lv8(&rd, PIN_MAX_LEN, &oldp));
	ML_TRY(ml_rd_lv8(&rd, PIN_MAX_LEN, &newp));
	ML_TRY(ml_rd_end(&rd));
	ML_ENSURE(ml_rd_left(&newp) >= PIN_MIN_LEN, ML_ERR_ARG);
	ML_TRY(pin_check(c, p, ml_rd_ptr(&oldp), ml_rd_left(&oldp)));
	ML_TRY(pin_set(p, ml_rd_ptr(&newp), ml_rd_left(&newp)));
	ML_TRY(chip_commit(c));
	r = 0;
out:
	return r;
}

/* 00 2C 00 81 Lc newPIN: the SO sets (C_InitPIN) or unblocks the user PIN. */
static int
core_reset_retry(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	int r;

	if (a->p1 != 0 || a->p2 != PIN_USER) {
		return SW_INCORRECT_P1P2;
	}
	ML_TRY(chip_need_login(c, LOGIN_SO));
	ML_TRY(pin_set(&c->st.user_pin, ml_rd_ptr(&a->data),
	    ml_rd_left(&a->data)));
	c->st.flags |= INFO_F_USER_PIN_SET;
	ML_TRY(chip_commit(c));
	r = 0;
out:
	return r;
}

/*
 * 80 50 00 00 Lc lv8(SO PIN) lv8(label): C_InitToken.  First time: sets the
 * SO PIN.  Later: the SO PIN must match (counted); every object and the user
 * PIN are destroyed.  A locked (personalised) note refuses.
 */
static int
core_init_token(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct ml_rd rd = a->data, so, label;
	size_t i;
	int r;

	ML_TRY(ml_rd_lv8(&rd, PIN_MAX_LEN, &so));
	ML_TRY(ml_rd_lv8(&rd, LABEL_MAX_LEN, &label));
	ML_TRY(ml_rd_end(&rd));
	ML_ENSURE(ml_rd_left(&so) >= PIN_MIN_LEN, ML_ERR_ARG);
	ML_ENSURE((c->st.flags & INFO_F_LOCKED) == 0, ML_ERR_STATE);
	if (c->st.flags & INFO_F_INITIALIZED) {
		c->login = LOGIN_NONE;
		if ((r = pin_check(c, &c->st.so_pin, ml_rd_ptr(&so),
		    ml_rd_left(&so))) != 0) {
			goto out;
		}
	}
	for (i = 0; i < c->st.nobjs; i++) {
		chip_obj_clear(&c->st.objs[i]);
	}
	c->st.nobjs = 0;
	c->st.nissuers = 0;
	c->st.has_server = false;
	ml_freezero(c->st.feature, c->st.feature_len);
	c->st.feature = NULL;
	c->st.feature_len = 0;
	c->st.user_pin.set = false;
	c->st.user_pin.tries_left = c->st.user_pin.max_tries;
	ML_TRY(pin_set(&c->st.so_pin, ml_rd_ptr(&so), ml_rd_left(&so)));
	memcpy(c->st.label, ml_rd_ptr(&label), ml_rd_left(&label));
	c->st.label[ml_rd_left(&label)] = '\0';
	c->st.flags = INFO_F_INITIALIZED;
	c->login = LOGIN_NONE;
	if (c->st.kind == CHIP_KIND_READER) {
		chip_reader_forget(c, true);
	}
	ML_TRY(chip_commit(c));
	r = 0;
out:
	return r;
}

static int
core_logout(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	c->login = LOGIN_NONE;
	return 0;
}

/* ---- info, random ---- */

static size_t
store_free_estimate(const struct chip *c)
{
	size_t used = state_size_estimate(&c->st);

	return used >= STORE_MAX_PAYLOAD ? 0 : STORE_MAX_PAYLOAD - used;
}

const char *const chip_perso_state_names[2] = { "PERSO", "ISSUED" };

unsigned
chip_perso_state(const struct chip *c)
{
	return (c->st.flags & INFO_F_LOCKED) != 0 ? CHIP_ISSUED : CHIP_PERSO;
}

int
chip_perso_lock(struct chip *c, const struct apdu *a, bool complete)
{
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(a->p1 == 0 && a->p2 == 0, SW_INCORRECT_P1P2);
	ML_ENSURE(ml_rd_left(&a->data) == 0, SW_WRONG_LENGTH);
	ML_ENSURE(complete, SW_CONDITIONS_NOT_SATISFIED);
	c->st.flags |= INFO_F_LOCKED;
	ML_TRY(chip_commit(c));
	r = 0;
out:
	return r;
}

int
core_get_data(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	uint16_t flags = c->st.flags;
	int r;

	if (a->p1 != GD_CHIP_INFO || a->p2 != 0) {
		return SW_INCORRECT_P1P2;
	}
	if (c->st.user_pin.set && c->st.user_pin.tries_left == 0) {
		flags |= INFO_F_USER_LOCKED;
	}
	if (c->st.so_pin.set && c->st.so_pin.tries_left == 0) {
		flags |= INFO_F_SO_LOCKED;
	}
	ML_TRY(ml_tlv_put_u8(resp, TAG_INFO_KIND, (uint8_t)c->st.kind));
	ML_TRY(ml_tlv_put(resp, TAG_INFO_SERIAL, c->st.serial,
	    strlen(c->st.serial)));
	ML_TRY(ml_tlv_put(resp, TAG_INFO_LABEL, c->st.label,
	    strlen(c->st.label)));
	ML_TRY(ml_tlv_put_u16(resp, TAG_INFO_STATE, flags));
	ML_TRY(ml_tlv_put_u8(resp, TAG_INFO_USER_TRIES,
	    c->st.user_pin.tries_left));
	ML_TRY(ml_tlv_put_u8(resp, TAG_INFO_SO_TRIES, c->st.so_pin.tries_left));
	ML_TRY(ml_tlv_put_u8(resp, TAG_INFO_MAX_TRIES, c->st.user_pin.max_tries));
	ML_TRY(ml_tlv_put_u32(resp, TAG_INFO_FREE,
	    (uint32_t)store_free_estimate(c)));
	ML_TRY(ml_tlv_put_u16(resp, TAG_INFO_VERSION,
	    (CHIP_VERSION_MAJOR << 8) | CHIP_VERSION_MINOR));
	ML_TRY(ml_tlv_put_u8(resp, TAG_INFO_LOGIN, (uint8_t)c->login));
	ML_TRY(ml_tlv_put_u32(resp, TAG_INFO_STORE_GEN,
	    store_generation(c->store)));
	if (c->st.kind == CHIP_KIND_READER) {
		ML_TRY(ml_tlv_put_u8(resp, TAG_INFO_MODE, c->st.cache_mode));
	}
	r = 0;
out:
	return r;
}

/* 00 84 00 00 Le: the chip's own random source (C_GenerateRandom, ID-2 R). */
int
core_get_challenge(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	uint8_t *p;
	size_t n = a->ne;
	int r;

	if (a->p1 != 0 || a->p2 != 0) {
		return SW_INCORRECT_P1P2;
	}
	if (n == 0 || ml_rd_left(&a->data) != 0) {
		return SW_WRONG_LENGTH;
	}
	ML_TRY(ml_wr_reserve(resp, n, &p));
	ML_TRY(ml_rand(p, n));
	r = 0;
out:
	return r;
}

/* ---- objects ---- */

static int
core_list_objects(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	const struct chip_obj *o;
	size_t i;
	int r;

	for (i = 0; i < c->st.nobjs; i++) {
		o = &c->st.objs[i];
		ML_TRY(ml_wr_u16be(resp, o->id));
		ML_TRY(ml_wr_u8(resp, o->cls));
		ML_TRY(ml_wr_u8(resp, o->flags));
		ML_TRY(ml_wr_u16be(resp, (uint16_t)o->attrs_len));
	}
	r = 0;
out:
	return r;
}

static uint16_t
p1p2(const struct apdu *a)
{
	return (uint16_t)((a->p1 << 8) | a->p2);
}

static int
core_read_object(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct chip_obj *o;
	int r;

	ML_ENSURE(ml_rd_left(&a->data) == 0, ML_ERR_TRAILING);
	ML_ENSURE((o = chip_obj_find(c, p1p2(a))) != NULL, ML_ERR_NOT_FOUND);
	if (o->flags & OBJ_F_PRIVATE) {
		ML_TRY(chip_need_login(c, LOGIN_USER));
	}
	ML_TRY(ml_tlv_put_u16(resp, TAG_OBJ_ID, o->id));
	ML_TRY(ml_tlv_put_u8(resp, TAG_OBJ_CLASS, o->cls));
	ML_TRY(ml_tlv_put_u8(resp, TAG_OBJ_FLAGS, o->flags));
	ML_TRY(ml_tlv_put(resp, TAG_OBJ_ATTRS, o->attrs, o->attrs_len));
	if (o->has_point) {
		ML_TRY(ml_tlv_put(resp, TAG_OBJ_POINT, o->point, sizeof(o->point)));
	}
	r = 0;
out:
	return r;
}

/* 80 64 00 00 Lc class(1) flags(1) attrs: data, certificates, public keys. */
static int
core_create_object(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct chip_obj o = { 0 };
	struct ml_rd rd = a->data;
	int r;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	ML_TRY(ml_rd_u8(&rd, &o.cls));
	ML_TRY(ml_rd_u8(&rd, &o.flags));
	ML_ENSURE(o.cls == OBJ_CLASS_DATA || o.cls == OBJ_CLASS_CERT ||
	    o.cls == OBJ_CLASS_PUBKEY, ML_ERR_ARG);	/* no private key import */
	ML_ENSURE((o.flags & ~(OBJ_F_PRIVATE | OBJ_F_READONLY)) == 0, ML_ERR_ARG);
	ML_ENSURE(ml_rd_left(&rd) <= OBJ_MAX_ATTRS, ML_ERR_TOO_LARGE);
	ML_TRY(chip_dup_bytes(&rd, &o.attrs, &o.attrs_len));
	o.id = obj_next_id(c);
	ML_TRY(obj_append(c, &o));
	o.attrs = NULL;
	if ((r = chip_commit(c)) != 0) {
		goto out;
	}
	ML_TRY(ml_wr_u16be(resp, c->st.objs[c->st.nobjs - 1].id));
	r = 0;
out:
	ml_freezero(o.attrs, o.attrs_len);
	return r;
}

static int
core_update_object(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct chip_obj *o;
	uint8_t *na = NULL;
	size_t nlen = 0;
	int r;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	ML_ENSURE((o = chip_obj_find(c, p1p2(a))) != NULL, ML_ERR_NOT_FOUND);
	ML_ENSURE((o->flags & OBJ_F_READONLY) == 0, ML_ERR_STATE);
	ML_ENSURE(ml_rd_left(&a->data) <= OBJ_MAX_ATTRS, ML_ERR_TOO_LARGE);
	ML_TRY(chip_dup_bytes(&a->data, &na, &nlen));
	ml_freezero(o->attrs, o->attrs_len);
	o->attrs = na;
	o->attrs_len = nlen;
	na = NULL;
	ML_TRY(chip_commit(c));
	r = 0;
out:
	ml_freezero(na, nlen);
	return r;
}

static int
core_delete_object(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct chip_obj *o;
	int r;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	ML_ENSURE(ml_rd_left(&a->data) == 0, ML_ERR_TRAILING);
	ML_ENSURE((o = chip_obj_find(c, p1p2(a))) != NULL, ML_ERR_NOT_FOUND);
	ML_ENSURE((o->flags & (OBJ_F_READONLY | OBJ_F_CHIPKEY)) == 0,
	    ML_ERR_STATE);
	obj_remove(c, o);
	ML_TRY(chip_commit(c));
	r = 0;
out:
	return r;
}

int
chip_gen_keypair(struct chip *c, uint8_t flags, const uint8_t *priv_attrs,
    size_t priv_len, const uint8_t *pub_attrs, size_t pub_len,
    uint16_t *ret_priv_id, uint16_t *ret_pub_id)
{
	struct chip_obj priv = { 0 }, pub = { 0 };
	size_t n0 = c->st.nobjs;
	int r;

	ML_ENSURE(priv_len <= OBJ_MAX_ATTRS && pub_len <= OBJ_MAX_ATTRS,
	    ML_ERR_TOO_LARGE);
	priv.cls = OBJ_CLASS_PRIVKEY;
	priv.flags = OBJ_F_PRIVATE | flags;
	pub.cls = OBJ_CLASS_PUBKEY;
	pub.flags = (flags & OBJ_F_CHIPKEY) ? OBJ_F_CHIPKEY : 0;
	ML_TRY(ml_p256_keygen(priv.priv, priv.point));
	priv.has_priv = priv.has_point = true;
	memcpy(pub.point, priv.point, sizeof(pub.point));
	pub.has_point = true;
	ML_ENSURE((priv.attrs = malloc(priv_len ? priv_len : 1)) != NULL,
	    ML_ERR_NOMEM);
	ML_ENSURE((pub.attrs = malloc(pub_len ? pub_len : 1)) != NULL,
	    ML_ERR_NOMEM);
	if (priv_len > 0) {
		memcpy(priv.attrs, priv_attrs, priv_len);
	}
	if (pub_len > 0) {
		memcpy(pub.attrs, pub_attrs, pub_len);
	}
	priv.attrs_len = priv_len;
	pub.attrs_len = pub_len;
	priv.id = obj_next_id(c);
	pub.id = obj_next_id(c);
	ML_TRY(obj_append(c, &priv));
	priv = (struct chip_obj){ 0 };
	if ((r = obj_append(c, &pub)) != 0) {
		obj_remove(c, &c->st.objs[n0]);
		goto out;
	}
	pub = (struct chip_obj){ 0 };
	ML_TRY(chip_commit(c));
	*ret_priv_id = c->st.objs[n0].id;
	*ret_pub_id = c->st.objs[n0 + 1].id;
	r = 0;
out:
	chip_obj_clear(&priv);
	chip_obj_clear(&pub);
	return r;
}

/* 80 46 P1 00 Lc lv16(priv attrs) lv16(pub attrs) -> priv id, pub id, point */
static int
core_gen_keypair(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct ml_rd rd = a->data, pa, pb;
	uint16_t priv_id, pub_id;
	uint8_t flags = OBJ_F_SIGN | OBJ_F_DERIVE;
	struct chip_obj *o;
	int r;

	ML_ENSURE(c->login != LOGIN_NONE, ML_ERR_PERM);
	ML_ENSURE(a->p2 == 0 && (a->p1 == GENKEY_NORMAL || a->p1 == GENKEY_CHIPKEY),
	    SW_INCORRECT_P1P2);
	ML_TRY(ml_rd_lv16(&rd, OBJ_MAX_ATTRS, &pa));
	ML_TRY(ml_rd_lv16(&rd, OBJ_MAX_ATTRS, &pb));
	ML_TRY(ml_rd_end(&rd));
	if (a->p1 == GENKEY_CHIPKEY) {
		/* BN-8: one chip authentication key, made before personalisation
		 * closes, usable only by the note profile's own commands. */
		ML_ENSURE(c->st.kind == CHIP_KIND_NOTE, ML_ERR_UNSUPPORTED);
		ML_ENSURE((c->st.flags & INFO_F_LOCKED) == 0, ML_ERR_STATE);
		ML_ENSURE(chip_chipkey(c) == NULL, ML_ERR_EXISTS);
		flags = OBJ_F_CHIPKEY;
	}
	ML_TRY(chip_gen_keypair(c, flags, ml_rd_ptr(&pa), ml_rd_left(&pa),
	    ml_rd_ptr(&pb), ml_rd_left(&pb), &priv_id, &pub_id));
	o = chip_obj_find(c, priv_id);
	ML_TRY(ml_wr_u16be(resp, priv_id));
	ML_TRY(ml_wr_u16be(resp, pub_id));
	ML_TRY(ml_wr_bytes(resp, o->point, sizeof(o->point)));
	r = 0;
out:
	return r;
}

static int
usable_key(struct chip *c, uint16_t id, uint8_t need, struct chip_obj **ret)
{
	struct chip_obj *o;

	if ((o = chip_obj_find(c, id)) == NULL || o->cls != OBJ_CLASS_PRIVKEY) {
		return ML_ERR_NOT_FOUND;
	}
	/* The chip key answers only the note profile's own commands. */
	if ((o->flags & OBJ_F_CHIPKEY) || (o->flags & need) != need) {
		return ML_ERR_STATE;
	}
	*ret = o;
	return 0;
}

/* 80 2A 9E 9A Lc keyid(2) digest(1..64) -> r||s */
static int
core_sign(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct ml_rd rd = a->data;
	const struct ml_p256_key *k;
	struct chip_obj *o;
	uint8_t sig[ML_P256_SIG_LEN];
	uint16_t id;
	size_t n;
	int r;

	ML_ENSURE(a->p1 == 0x9E && a->p2 == 0x9A, SW_INCORRECT_P1P2);
	ML_TRY(chip_need_login(c, LOGIN_USER));
	ML_TRY(ml_rd_u16be(&rd, &id));
	n = ml_rd_left(&rd);
	ML_ENSURE(n >= 1 && n <= 64, ML_ERR_SHORT);
	ML_TRY(usable_key(c, id, OBJ_F_SIGN, &o));
	ML_TRY(chip_obj_key(o, &k));
	ML_TRY(ml_p256_sign_digest(k, ml_rd_ptr(&rd), n, sig));
	ML_TRY(ml_wr_bytes(resp, sig, sizeof(sig)));
	r = 0;
out:
	return r;
}

/* 80 86 idH idL Lc point(65) -> x(32) */
static int
core_ecdh(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	const struct ml_p256_key *k;
	struct chip_obj *o;
	uint8_t secret[ML_P256_SECRET_LEN];
	int r;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	ML_ENSURE(ml_rd_left(&a->data) == ML_P256_PUB_LEN, ML_ERR_SHORT);
	ML_TRY(usable_key(c, p1p2(a), OBJ_F_DERIVE, &o));
	ML_TRY(chip_obj_key(o, &k));
	ML_TRY(ml_p256_ecdh(k, ml_rd_ptr(&a->data), ML_P256_PUB_LEN, secret));
	ML_TRY(ml_wr_bytes(resp, secret, sizeof(secret)));
	r = 0;
out:
	ml_wipe(secret, sizeof(secret));
	return r;
}

/* ---- volatile secret keys (RAM only) ---- */

static int
core_gen_secret(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	size_t i;
	int r;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	for (i = 0; i < CHIP_MAX_SECRETS; i++) {
		if (!c->secrets[i].used) {
			break;
		}
	}
	ML_ENSURE(i < CHIP_MAX_SECRETS, ML_ERR_FULL);
	ML_TRY(ml_rand(c->secrets[i].key, sizeof(c->secrets[i].key)));
	c->secrets[i].used = true;
	ML_TRY(ml_wr_u8(resp, (uint8_t)i));
	r = 0;
out:
	return r;
}

static int
secret_ref(struct chip *c, uint8_t h, struct chip_secret **ret)
{
	if (h >= CHIP_MAX_SECRETS || !c->secrets[h].used) {
		return ML_ERR_NOT_FOUND;
	}
	*ret = &c->secrets[h];
	return 0;
}

/* 80 2C h 00 Lc iv(12) lv16(aad) pt -> ct || tag */
static int
core_secret_encrypt(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct ml_rd rd = a->data, aad;
	struct chip_secret *s;
	const uint8_t *iv;
	uint8_t *ct, tag[ML_GCM_TAG_LEN];
	size_t n;
	int r;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	ML_TRY(secret_ref(c, a->p1, &s));
	ML_TRY(ml_rd_bytes(&rd, ML_GCM_IV_LEN, &iv));
	ML_TRY(ml_rd_lv16(&rd, APDU_MAX_EXT_DATA, &aad));
	n = ml_rd_left(&rd);
	ML_TRY(ml_wr_reserve(resp, n + ML_GCM_TAG_LEN, &ct));
	ML_TRY(ml_gcm_seal(s->key, iv, ml_rd_ptr(&aad), ml_rd_left(&aad),
	    ml_rd_ptr(&rd), n, ct, tag));
	memcpy(ct + n, tag, sizeof(tag));
	r = 0;
out:
	return r;
}

/* 80 2E h 00 Lc iv(12) lv16(aad) ct || tag -> pt; a bad tag is 6984. */
static int
core_secret_decrypt(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct ml_rd rd = a->data, aad;
	struct chip_secret *s;
	const uint8_t *iv, *ct;
	uint8_t *pt;
	size_t n;
	int r;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	ML_TRY(secret_ref(c, a->p1, &s));
	ML_TRY(ml_rd_bytes(&rd, ML_GCM_IV_LEN, &iv));
	ML_TRY(ml_rd_lv16(&rd, APDU_MAX_EXT_DATA, &aad));
	ML_ENSURE(ml_rd_left(&rd) >= ML_GCM_TAG_LEN, ML_ERR_SHORT);
	n = ml_rd_left(&rd) - ML_GCM_TAG_LEN;
	ML_TRY(ml_rd_bytes(&rd, n, &ct));
	ML_TRY(ml_wr_reserve(resp, n, &pt));
	if (ml_gcm_open(s->key, iv, ml_rd_ptr(&aad), ml_rd_left(&aad), ct, n,
	    ml_rd_ptr(&rd), pt) != 0) {
		resp->len -= n;
		r = SW_DATA_INVALID;
		goto out;
	}
	r = 0;
out:
	return r;
}

static int
core_secret_destroy(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct chip_secret *s;
	size_t i;
	int r;

	ML_TRY(chip_need_login(c, LOGIN_USER));
	if (a->p1 == 0xFF) {
		for (i = 0; i < CHIP_MAX_SECRETS; i++) {
			ml_wipe(&c->secrets[i], sizeof(c->secrets[i]));
		}
		r = 0;
		goto out;
	}
	ML_TRY(secret_ref(c, a->p1, &s));
	ml_wipe(s, sizeof(*s));
	r = 0;
out:
	return r;
}

/* ---- the core table ---- */

enum core_state {
	CORE_BLANK = 1 << 0,	/* INIT TOKEN not done */
	CORE_READY = 1 << 1,	/* initialised */
};
#define CORE_ANY	(CORE_BLANK | CORE_READY)

static unsigned
core_state(const struct chip *c)
{
	return (c->st.flags & INFO_F_INITIALIZED) ? CORE_READY : CORE_BLANK;
}

static const char *const core_state_names[] = { "BLANK", "READY" };

/*
 * | INS | command            | states      | login          |
 * |-----|--------------------|-------------|----------------|
 * | CA  | GET DATA           | any         | none           |
 * | 84  | GET CHALLENGE      | any         | none           |
 * | 50  | INIT TOKEN         | any         | SO PIN in data |
 * | 52  | LOGOUT             | any         | none           |
 * | 20  | VERIFY             | READY       | -              |
 * | 24  | CHANGE REF. DATA   | READY       | old PIN        |
 * | 2C  | RESET RETRY CTR    | READY       | SO             |
 * | 60  | LIST OBJECTS       | READY       | none           |
 * | 62  | READ OBJECT        | READY       | user if private|
 * | 64  | CREATE OBJECT      | READY       | user           |
 * | 66  | UPDATE OBJECT      | READY       | user           |
 * | 68  | DELETE OBJECT      | READY       | user           |
 * | 46  | GENERATE KEY PAIR  | READY       | user or SO     |
 * | 2A  | SIGN (PSO CDS)     | READY       | user           |
 * | 86  | ECDH               | READY       | user           |
 * | 48  | GENERATE SECRET    | READY       | user           |
 * | 2C  | SECRET ENCRYPT(80) | READY       | user           |
 * | 2E  | SECRET DECRYPT     | READY       | user           |
 * | 4A  | SECRET DESTROY     | READY       | user           |
 */
static const struct ins_entry core_ins[] = {
	{ CLA_ISO,  INS_GET_DATA,	CORE_ANY,   core_get_data, "GET DATA" },
	{ CLA_ISO,  INS_GET_CHALLENGE,	CORE_ANY,   core_get_challenge, "GET CHALLENGE" },
	{ CLA_PROP, INS_INIT_TOKEN,	CORE_ANY,   core_init_token, "INIT TOKEN" },
	{ CLA_PROP, INS_LOGOUT,		CORE_ANY,   core_logout, "LOGOUT" },
	{ CLA_ISO,  INS_VERIFY,		CORE_READY, core_verify, "VERIFY" },
	{ CLA_ISO,  INS_CHANGE_PIN,	CORE_READY, core_change_pin, "CHANGE REFERENCE DATA" },
	{ CLA_ISO,  INS_RESET_RETRY,	CORE_READY, core_reset_retry, "RESET RETRY COUNTER" },
	{ CLA_PROP, INS_LIST_OBJECTS,	CORE_READY, core_list_objects, "LIST OBJECTS" },
	{ CLA_PROP, INS_READ_OBJECT,	CORE_READY, core_read_object, "READ OBJECT" },
	{ CLA_PROP, INS_CREATE_OBJECT,	CORE_READY, core_create_object, "CREATE OBJECT" },
	{ CLA_PROP, INS_UPDATE_OBJECT,	CORE_READY, core_update_object, "UPDATE OBJECT" },
	{ CLA_PROP, INS_DELETE_OBJECT,	CORE_READY, core_delete_object, "DELETE OBJECT" },
	{ CLA_PROP, INS_GEN_KEYPAIR,	CORE_READY, core_gen_keypair, "GENERATE KEY PAIR" },
	{ CLA_PROP, INS_SIGN,		CORE_READY, core_sign, "SIGN" },
	{ CLA_PROP, INS_ECDH,		CORE_READY, core_ecdh, "ECDH" },
	{ CLA_PROP, INS_GEN_SECRET,	CORE_READY, core_gen_secret, "GENERATE SECRET" },
	{ CLA_PROP, INS_SECRET_ENCRYPT,	CORE_READY, core_secret_encrypt, "SECRET ENCRYPT" },
	{ CLA_PROP, INS_SECRET_DECRYPT,	CORE_READY, core_secret_decrypt, "SECRET DECRYPT" },
	{ CLA_PROP, INS_SECRET_DESTROY,	CORE_READY, core_secret_destroy, "SECRET DESTROY" },
};

const struct chip_profile chip_profile_core = {
	.kind = 0,
	.name = "core",
	.ins = core_ins,
	.nins = ML_NELEM(core_ins),
	.state = core_state,
	.state_names = core_state_names,
	.nstates = ML_NELEM(core_state_names),
	.reset = NULL,
};

/* ---- dispatcher ---- */

static const struct ins_entry *
ins_find(const struct chip_profile *p, uint8_t cla, uint8_t ins, bool *ret_cla_known)
{
	size_t i;

	for (i = 0; i < p->nins; i++) {
		if (p->ins[i].ins == ins) {
			if (p->ins[i].cla == cla) {
				return &p->ins[i];
			}
			*ret_cla_known = true;
		}
	}
	return NULL;
}

static int
do_select(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	const uint8_t *aid;
	size_t n = ml_rd_left(&a->data);
	size_t mark;
	uint8_t full[CHIP_AID_LEN];
	int r;

	if (a->p1 != 0x04 || (a->p2 & ~0x0C) != 0) {
		return SW_INCORRECT_P1P2;
	}
	aid = ml_rd_ptr(&a->data);
	memcpy(full, aid_prefix, CHIP_AID_PREFIX_LEN);
	full[CHIP_AID_PREFIX_LEN] = (uint8_t)c->st.kind;
	/* Accept the full AID, or a partial AID that is a prefix of ours. */
	if (n == 0 || n > CHIP_AID_LEN || memcmp(aid, full, n) != 0) {
		c->selected = false;
		return SW_FILE_NOT_FOUND;
	}
	if (!c->selected) {
		c->login = LOGIN_NONE;
	}
	c->selected = true;
	if (a->p2 & 0x0C) {
		return 0;	/* no FCI requested */
	}
	ML_TRY(ml_tlv_open(resp, 0x6F, &mark));
	ML_TRY(ml_tlv_put(resp, 0x84, full, sizeof(full)));
	ML_TRY(ml_tlv_put_u8(resp, TAG_INFO_KIND, (uint8_t)c->st.kind));
	ML_TRY(ml_tlv_put(resp, TAG_INFO_SERIAL, c->st.serial,
	    strlen(c->st.serial)));
	ML_TRY(ml_tlv_close(resp, mark));
	r = 0;
out:
	return r;
}

static int
do_get_response(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	if (c->pending == NULL) {
		return SW_CONDITIONS_NOT_SATISFIED;
	}
	if (a->p1 != 0 || a->p2 != 0) {
		return SW_INCORRECT_P1P2;
	}
	return 1;	/* the caller serves from pending */
}

/* Emit up to ne bytes of src into out, buffer the rest, set the SW. */
static size_t
emit(struct chip *c, const uint8_t *src, size_t n, uint32_t ne, uint8_t *out,
    uint16_t *sw)
{
	size_t take = n, rest;

	if (take > ne) {
		take = ne;
	}
	if (take > 0) {
		memcpy(out, src, take);	/* src is NULL for an empty answer */
	}
	rest = n - take;
	ml_freezero(c->pending, c->pending_len);
	c->pending = NULL;
	c->pending_len = c->pending_off = 0;
	if (rest > 0) {
		if ((c->pending = malloc(rest)) != NULL) {
			memcpy(c->pending, src + take, rest);
			c->pending_len = rest;
			*sw = SW_BYTES_REMAINING(rest > 255 ? 0 : rest);
		} else {
			*sw = SW_MEMORY_FAILURE;
			return 0;
		}
	}
	return take;
}

/*
 * The most a response may carry: Ne (no Le in cases 1 and 3 counts as
 * "whatever fits"), bounded by the host's buffer less the status word.
 * What does not fit is chained with 61xx.
 */
static uint32_t
fit(uint32_t ne, size_t resp_cap)
{
	return (resp_cap - 2 < ne) ? (uint32_t)(resp_cap - 2) : ne;
}

static int
chip_exec(struct chip *c, const uint8_t *cmd, size_t cmd_len,
    uint8_t *resp, size_t resp_cap, size_t *ret_resp_len)
{
	const struct chip_profile *prof = chip_profile_for(c->st.kind);
	const struct chip_profile *tab = NULL;
	const struct ins_entry *e = NULL;
	struct ml_wr w = ml_wr_dyn(CHIP_MAX_RESP);
	struct apdu a;
	bool cla_known = false;
	uint16_t sw = SW_OK;
	size_t out = 0;
	uint8_t *pend = NULL;
	size_t pend_len = 0;
	int r;

	if (resp_cap < 2 || prof == NULL) {
		return ML_ERR_ARG;
	}
	if (c->dead) {
		sw = SW_MEMORY_FAILURE;	/* RAM could not be made to match flash */
		goto done;
	}
	r = apdu_parse(cmd, cmd_len, &a);
	/* Anything but a well-formed GET RESPONSE drops a chained remainder. */
	if (r != 0 || a.cla != CLA_ISO || a.ins != INS_GET_RESPONSE) {
		ml_freezero(c->pending, c->pending_len);
		c->pending = NULL;
		c->pending_len = c->pending_off = 0;
	}
	if (r != 0) {
		sw = SW_WRONG_LENGTH;
		goto done;
	}
	if ((a.cla & 0x7C) != 0 || (a.cla & 0x03) != 0) {
		sw = SW_CLA_NOT_SUPPORTED;	/* no channels, no SM, no chaining */
		goto done;
	}
	if (a.cla == CLA_ISO && a.ins == INS_SELECT) {
		r = do_select(c, &a, &w);
	} else if (a.cla == CLA_ISO && a.ins == INS_GET_RESPONSE) {
		if ((r = do_get_response(c, &a, &w)) == 1) {
			/* Serve the buffered remainder. */
			pend = c->pending;
			pend_len = c->pending_len;
			c->pending = NULL;
			c->pending_len = 0;
			out = emit(c, pend, pend_len, fit(a.ne ? a.ne : 256,
			    resp_cap), resp, &sw);
			ml_freezero(pend, pend_len);
			goto done;
		}
	} else {
		if ((e = ins_find(prof, a.cla, a.ins, &cla_known)) != NULL) {
			tab = prof;
		} else if ((e = ins_find(&chip_profile_core, a.cla, a.ins,
		    &cla_known)) != NULL) {
			tab = &chip_profile_core;
		}
		if (e == NULL) {
			/* SELECT and GET RESPONSE exist, under CLA 00 only */
			if (a.ins == INS_SELECT || a.ins == INS_GET_RESPONSE) {
				cla_known = true;
			}
			sw = cla_known ? SW_CLA_NOT_SUPPORTED : SW_INS_NOT_SUPPORTED;
			goto done;
		}
		if (!c->selected || (e->allowed & tab->state(c)) == 0) {
			sw = SW_CONDITIONS_NOT_SATISFIED;
			goto done;
		}
		r = e->fn(c, &a, &w);
	}
	if (r > 0) {
		sw = (uint16_t)r;
	} else if (r < 0) {
		if (r == ML_ERR_IO && ml_log_enabled(ML_LOG_WARN)) {
			ml_warn("chip %s: INS %02X: store write failed",
			    c->st.serial, a.ins);
		}
		sw = ml_err_to_sw(r);
	}
	if (sw == SW_OK) {
		out = emit(c, w.p, w.len, fit(a.ne ? a.ne : 65536, resp_cap),
		    resp, &sw);
	}
done:
	ml_wr_free(&w);
	resp[out] = (uint8_t)(sw >> 8);
	resp[out + 1] = (uint8_t)sw;
	*ret_resp_len = out + 2;
	return 0;
}

/*
 * Another host sharing the image committed (store locked): take its
 * persistent state; this host's RAM (selection, login, challenges, volatile
 * keys) stays, as each host has its own logical view of the chip.
 */
static int
chip_sync(struct chip *c)
{
	struct chip_state st;
	uint8_t *payload = NULL;
	size_t len = 0;
	int r;

	if ((r = store_sync(c->store, &payload, &len)) != 0) {
		return r == 1 ? 0 : r;
	}
	if ((r = chip_state_parse(payload, len, &st)) != 0) {
		ml_freezero(payload, len);
		return r;
	}
	chip_state_clear(&c->st);
	c->st = st;
	ml_freezero(c->last, c->last_len);
	c->last = payload;
	c->last_len = len;
	c->dead = false;
	return 0;
}

/*
 * One command, exclusive against every other host of this image for its
 * duration (OP-3: one chip shared by several processes, the way PC/SC
 * shares a card): lock, take the newest store copy, run, unlock.
 */
int
chip_transmit(struct chip *c, const uint8_t *cmd, size_t cmd_len,
    uint8_t *resp, size_t resp_cap, size_t *ret_resp_len)
{
	int r;

	if (resp_cap < 2) {
		return ML_ERR_ARG;
	}
	if ((r = store_lock(c->store)) != 0) {
		return r;
	}
	if ((r = chip_sync(c)) != 0) {
		/* The image no longer verifies: answer as a failing memory. */
		ml_warn("chip %s: store reload failed: %s", c->st.serial,
		    ml_strerror(r));
		resp[0] = (uint8_t)(SW_MEMORY_FAILURE >> 8);
		resp[1] = (uint8_t)SW_MEMORY_FAILURE;
		*ret_resp_len = 2;
		r = 0;
	} else {
		r = chip_exec(c, cmd, cmd_len, resp, resp_cap, ret_resp_len);
	}
	store_unlock(c->store);
	return r;
}
