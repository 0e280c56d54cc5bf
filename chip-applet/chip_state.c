/*
 * Serialization of the persistent chip state (struct chip_state) to and
 * from the store payload.  The payload is a flat list of BER-TLVs with
 * private tags; objects are constructed TLVs.  Parsing goes through ml_rd
 * and ml_tlv with a limit on every field: a store image is untrusted input
 * too (it passed the MAC, but the MAC key sits beside it on disk).
 */
#include <stdlib.h>
#include <string.h>

#include "ml_tlv.h"
#include "ml_wipe.h"
#include "chip_int.h"
#include "chip_state.h"

enum {
	ST_VERSION	= 0x41,
	ST_KIND		= 0x42,
	ST_SERIAL	= 0x43,
	ST_LABEL	= 0x44,
	ST_FLAGS	= 0x45,
	ST_USER_PIN	= 0x46,
	ST_SO_PIN	= 0x47,
	ST_NEXT_ID	= 0x48,
	ST_OBJECT	= 0x69,		/* constructed (bit 6 set) */
	ST_ISSUER	= 0x4A,
	ST_SERVER	= 0x4B,
	ST_FEATURE	= 0x4C,
	ST_FEAT_CHAL	= 0x4D,
	ST_FEAT_SIG	= 0x4E,
	ST_FEAT_ISSUER	= 0x4F,
	ST_CACHE_MODE	= 0x56,
	ST_CARD_CONFIG	= 0x57,
	ST_CARD_DATA	= 0x58,
	ST_SAM_KEY	= 0x59,

	OB_ID		= 0x50,
	OB_CLASS	= 0x51,
	OB_FLAGS	= 0x52,
	OB_ATTRS	= 0x53,
	OB_POINT	= 0x54,
	OB_PRIV		= 0x55,
};

#define ST_FORMAT_VERSION	1
#define PIN_REC_LEN		(1 + PIN_SALT_LEN + ML_SHA256_LEN + 2)

static int
put_pin(struct ml_wr *w, uint32_t tag, const struct chip_pin *p)
{
	uint8_t b[PIN_REC_LEN];
	int r;

	b[0] = p->set ? 1 : 0;
	memcpy(b + 1, p->salt, PIN_SALT_LEN);
	memcpy(b + 1 + PIN_SALT_LEN, p->hash, ML_SHA256_LEN);
	b[PIN_REC_LEN - 2] = p->tries_left;
	b[PIN_REC_LEN - 1] = p->max_tries;
	r = ml_tlv_put(w, tag, b, sizeof(b));
	ml_wipe(b, sizeof(b));
	return r;
}

static int
get_pin(struct ml_rd *v, struct chip_pin *p)
{
	uint8_t set;
	int r;

	ML_ENSURE(ml_rd_left(v) == PIN_REC_LEN, ML_ERR_FORMAT);
	ML_TRY(ml_rd_u8(v, &set));
	ML_TRY(ml_rd_copy(v, p->salt, PIN_SALT_LEN));
	ML_TRY(ml_rd_copy(v, p->hash, ML_SHA256_LEN));
	ML_TRY(ml_rd_u8(v, &p->tries_left));
	ML_TRY(ml_rd_u8(v, &p->max_tries));
	ML_ENSURE(p->max_tries > 0 && p->tries_left <= p->max_tries, ML_ERR_FORMAT);
	p->set = set != 0;
	r = 0;
out:
	return r;
}

static int
put_obj(struct ml_wr *w, const struct chip_obj *o)
{
	size_t mark;
	int r;

	ML_TRY(ml_tlv_open(w, ST_OBJECT, &mark));
	ML_TRY(ml_tlv_put_u16(w, OB_ID, o->id));
	ML_TRY(ml_tlv_put_u8(w, OB_CLASS, o->cls));
	ML_TRY(ml_tlv_put_u8(w, OB_FLAGS, o->flags));
	ML_TRY(ml_tlv_put(w, OB_ATTRS, o->attrs, o->attrs_len));
	if (o->has_point) {
		ML_TRY(ml_tlv_put(w, OB_POINT, o->point, sizeof(o->point)));
	}
	if (o->has_priv) {
		ML_TRY(ml_tlv_put(w, OB_PRIV, o->priv, sizeof(o->priv)));
	}
	ML_TRY(ml_tlv_close(w, mark));
	r = 0;
out:
	return r;
}

int
chip_state_serialize(const struct chip_state *st, struct ml_wr *w)
{
	size_t i;
	int r;

	ML_TRY(ml_tlv_put_u8(w, ST_VERSION, ST_FORMAT_VERSION));
	ML_TRY(ml_tlv_put_u8(w, ST_KIND, (uint8_t)st->kind));
	ML_TRY(ml_tlv_put(w, ST_SERIAL, st->serial, strlen(st->serial)));
	ML_TRY(ml_tlv_put(w, ST_LABEL, st->label, strlen(st->label)));
	ML_TRY(ml_tlv_put_u16(w, ST_FLAGS, st->flags));
	ML_TRY(put_pin(w, ST_USER_PIN, &st->user_pin));
	ML_TRY(put_pin(w, ST_SO_PIN, &st->so_pin));
	ML_TRY(ml_tlv_put_u16(w, ST_NEXT_ID, st->next_id));
	for (i = 0; i < st->nobjs; i++) {
		ML_TRY(put_obj(w, &st->objs[i]));
	}
	for (i = 0; i < st->nissuers; i++) {
		ML_TRY(ml_tlv_put(w, ST_ISSUER, st->issuers[i], ML_P256_PUB_LEN));
	}
	if (st->has_server) {
		ML_TRY(ml_tlv_put(w, ST_SERVER, st->server_pub, ML_P256_PUB_LEN));
	}
	if (st->feature != NULL) {
		ML_TRY(ml_tlv_put(w, ST_FEATURE, st->feature, st->feature_len));
		ML_TRY(ml_tlv_put(w, ST_FEAT_CHAL, st->feat_challenge,
		    sizeof(st->feat_challenge)));
		ML_TRY(ml_tlv_put(w, ST_FEAT_SIG, st->feat_sig, sizeof(st->feat_sig)));
		ML_TRY(ml_tlv_put_u8(w, ST_FEAT_ISSUER, st->feat_issuer));
	}
	if (st->cache_mode != 0) {
		ML_TRY(ml_tlv_put_u8(w, ST_CACHE_MODE, st->cache_mode));
	}
	if (st->card_config_len > 0) {
		ML_TRY(ml_tlv_put(w, ST_CARD_CONFIG, st->card_config,
		    st->card_config_len));
	}
	if (st->has_sam_key) {
		ML_TRY(ml_tlv_put(w, ST_SAM_KEY, st->sam_key,
		    sizeof(st->sam_key)));
	}
	if (st->card_data != NULL) {
		ML_TRY(ml_tlv_put(w, ST_CARD_DATA, st->card_data, st->card_data_len));
	}
	r = 0;
out:
	return r;
}

static int
get_u8(struct ml_rd *v, uint8_t *ret)
{
	int r;

	if ((r = ml_rd_u8(v, ret)) != 0) {
		return r;
	}
	return ml_rd_end(v) == 0 ? 0 : ML_ERR_FORMAT;
}

static int
get_u16(struct ml_rd *v, uint16_t *ret)
{
	int r;

	if ((r = ml_rd_u16be(v, ret)) != 0) {
		return r;
	}
	return ml_rd_end(v) == 0 ? 0 : ML_ERR_FORMAT;
}

static int
get_fixed(struct ml_rd *v, void *dst, size_t n)
{
	if (ml_rd_left(v) != n) {
		return ML_ERR_FORMAT;
	}
	return ml_rd_copy(v, dst, n);
}

int
chip_dup_bytes(const struct ml_rd *v, uint8_t **ret, size_t *ret_len)
{
	size_t n = ml_rd_left(v);
	uint8_t *p;

	if ((p = malloc(n ? n : 1)) == NULL) {
		return ML_ERR_NOMEM;
	}
	if (n > 0) {
		memcpy(p, ml_rd_ptr(v), n);
	}
	*ret = p;
	*ret_len = n;
	return 0;
}

static int
get_dup(struct ml_rd *v, size_t max, uint8_t **ret, size_t *ret_len)
{
	if (ml_rd_left(v) > max) {
		return ML_ERR_FORMAT;
	}
	return chip_dup_bytes(v, ret, ret_len);
}

static int
get_obj(struct ml_rd *v, struct chip_obj *o)
{
	struct ml_rd f;
	uint32_t tag;
	bool have_id = false;
	int r;

	*o = (struct chip_obj){ 0 };
	while (ml_rd_left(v) > 0) {
		ML_TRY(ml_tlv_next(v, &tag, &f));
		switch (tag) {
		case OB_ID:
			ML_TRY(get_u16(&f, &o->id));
			have_id = true;
			break;
		case OB_CLASS:
			ML_TRY(get_u8(&f, &o->cls));
			ML_ENSURE(o->cls <= OBJ_CLASS_PRIVKEY, ML_ERR_FORMAT);
			break;
		case OB_FLAGS:
			ML_TRY(get_u8(&f, &o->flags));
			break;
		case OB_ATTRS:
			ML_ENSURE(o->attrs == NULL, ML_ERR_FORMAT);
			ML_TRY(get_dup(&f, OBJ_MAX_ATTRS, &o->attrs, &o->attrs_len));
			break;
		case OB_POINT:
			ML_TRY(get_fixed(&f, o->point, sizeof(o->point)));
			o->has_point = true;
			break;
		case OB_PRIV:
			ML_TRY(get_fixed(&f, o->priv, sizeof(o->priv)));
			o->has_priv = true;
			break;
		default:
			ML_ENSURE(0, ML_ERR_FORMAT);
		}
	}
	ML_ENSURE(have_id, ML_ERR_FORMAT);
	if (o->attrs == NULL) {
		ML_ENSURE((o->attrs = malloc(1)) != NULL, ML_ERR_NOMEM);
	}
	r = 0;
out:
	if (r != 0) {
		chip_obj_clear(o);
	}
	return r;
}

void
chip_state_clear(struct chip_state *st)
{
	size_t i;

	for (i = 0; i < st->nobjs; i++) {
		chip_obj_clear(&st->objs[i]);
	}
	free(st->objs);
	ml_freezero(st->feature, st->feature_len);
	ml_freezero(st->card_data, st->card_data_len);
	ml_wipe(st, sizeof(*st));
}

int
chip_state_parse(const uint8_t *p, size_t len, struct chip_state *ret_st)
{
	struct chip_state st = { 0 };
	struct ml_rd rd = ML_RD_INIT(p, len), v;
	struct chip_obj *no;
	uint32_t tag;
	uint8_t u8;
	size_t n;
	int r;

	while (ml_rd_left(&rd) > 0) {
		ML_TRY(ml_tlv_next(&rd, &tag, &v));
		switch (tag) {
		case ST_VERSION:
			ML_TRY(get_u8(&v, &u8));
			ML_ENSURE(u8 == ST_FORMAT_VERSION, ML_ERR_FORMAT);
			break;
		case ST_KIND:
			ML_TRY(get_u8(&v, &u8));
			ML_ENSURE(u8 >= CHIP_KIND_READER && u8 <= CHIP_KIND_SAM,
			    ML_ERR_FORMAT);
			st.kind = (enum chip_kind)u8;
			break;
		case ST_SERIAL:
			n = ml_rd_left(&v);
			ML_ENSURE(n <= CHIP_SERIAL_LEN, ML_ERR_FORMAT);
			ML_TRY(ml_rd_copy(&v, st.serial, n));
			st.serial[n] = '\0';
			break;
		case ST_LABEL:
			n = ml_rd_left(&v);
			ML_ENSURE(n <= LABEL_MAX_LEN, ML_ERR_FORMAT);
			ML_TRY(ml_rd_copy(&v, st.label, n));
			st.label[n] = '\0';
			break;
		case ST_FLAGS:
			ML_TRY(get_u16(&v, &st.flags));
			break;
		case ST_USER_PIN:
			ML_TRY(get_pin(&v, &st.user_pin));
			break;
		case ST_SO_PIN:
			ML_TRY(get_pin(&v, &st.so_pin));
			break;
		case ST_NEXT_ID:
			ML_TRY(get_u16(&v, &st.next_id));
			break;
		case ST_OBJECT:
			ML_ENSURE(st.nobjs < OBJ_MAX_COUNT, ML_ERR_FORMAT);
			no = realloc(st.objs, (st.nobjs + 1) * sizeof(*no));
			ML_ENSURE(no != NULL, ML_ERR_NOMEM);
			st.objs = no;
			ML_TRY(get_obj(&v, &st.objs[st.nobjs]));
			st.nobjs++;
			break;
		case ST_ISSUER:
			ML_ENSURE(st.nissuers < NOTE_MAX_ISSUERS, ML_ERR_FORMAT);
			ML_TRY(get_fixed(&v, st.issuers[st.nissuers], ML_P256_PUB_LEN));
			st.nissuers++;
			break;
		case ST_SERVER:
			ML_TRY(get_fixed(&v, st.server_pub, ML_P256_PUB_LEN));
			st.has_server = true;
			break;
		case ST_FEATURE:
			ML_ENSURE(st.feature == NULL, ML_ERR_FORMAT);
			ML_TRY(get_dup(&v, NOTE_MAX_FEATURE, &st.feature,
			    &st.feature_len));
			break;
		case ST_FEAT_CHAL:
			ML_TRY(get_fixed(&v, st.feat_challenge,
			    sizeof(st.feat_challenge)));
			break;
		case ST_FEAT_SIG:
			ML_TRY(get_fixed(&v, st.feat_sig, sizeof(st.feat_sig)));
			break;
		case ST_FEAT_ISSUER:
			ML_TRY(get_u8(&v, &st.feat_issuer));
			break;
		case ST_CACHE_MODE:
			ML_TRY(get_u8(&v, &st.cache_mode));
			break;
		case ST_CARD_CONFIG:
			n = ml_rd_left(&v);
			ML_ENSURE(n <= CACHE_MAX_CONFIG, ML_ERR_FORMAT);
			ML_TRY(ml_rd_copy(&v, st.card_config, n));
			st.card_config_len = n;
			break;
		case ST_CARD_DATA:
			ML_ENSURE(st.card_data == NULL, ML_ERR_FORMAT);
			ML_TRY(get_dup(&v, IDCARD_MAX_DATA, &st.card_data,
			    &st.card_data_len));
			break;
		case ST_SAM_KEY:
			ML_ENSURE(ml_rd_left(&v) == sizeof(st.sam_key),
			    ML_ERR_FORMAT);
			ML_TRY(ml_rd_copy(&v, st.sam_key, sizeof(st.sam_key)));
			st.has_sam_key = true;
			break;
		default:
			ML_ENSURE(0, ML_ERR_FORMAT);
		}
	}
	ML_ENSURE(st.kind != 0 && st.serial[0] != '\0', ML_ERR_FORMAT);
	ML_ENSURE(st.user_pin.max_tries != 0 && st.so_pin.max_tries != 0,
	    ML_ERR_FORMAT);
	*ret_st = st;
	r = 0;
out:
	if (r != 0) {
		chip_state_clear(&st);
	}
	return r;
}
