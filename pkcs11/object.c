/*
 * The object cache: every object of a token (chip-resident token objects
 * and module-held session objects), indexed by handle, class, CKA_LABEL
 * and CKA_ID, so that C_FindObjects never rescans the chip.  The cache is
 * built once per chip generation (LIST OBJECTS + READ OBJECT each) and kept
 * coherent by the module's own CREATE/UPDATE/DELETE; a chip change drops it.
 * Also the chip side of token objects (read, write, create).  The calls
 * that create, copy and find objects are in object_ops.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml_log.h"
#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "chip.h"
#include "sw.h"
#include "p11m.h"

#define FEATURE_APP	"mintline-note-feature"

/* ---- index ---- */

static size_t
hash_bytes(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return (size_t)(h ^ (h >> 32)) & (P11M_NBUCKETS - 1);
}

static size_t
hash_attr(const struct p11m_obj *o, CK_ATTRIBUTE_TYPE type)
{
	const struct p11m_attr *at = p11m_attrs_get(&o->a, type);

	return at == NULL ? 0 : hash_bytes(at->val, at->len);
}

static size_t
class_bucket(CK_OBJECT_CLASS cls)
{
	return cls < P11M_NCLASSES - 1 ? (size_t)cls : P11M_NCLASSES - 1;
}

static size_t
hash_handle(CK_OBJECT_HANDLE h)
{
	return (size_t)(h * 2654435761UL) & (P11M_NBUCKETS - 1);
}

static void
chain_unlink(struct p11m_obj **head, struct p11m_obj *o,
    size_t next_off)
{
	struct p11m_obj **pp = head;

	while (*pp != NULL) {
		if (*pp == o) {
			*pp = *(struct p11m_obj **)((char *)o + next_off);
			return;
		}
		pp = (struct p11m_obj **)((char *)*pp + next_off);
	}
}

static void
index_names(struct p11m_objset *os, struct p11m_obj *o)
{
	size_t bl = hash_attr(o, CKA_LABEL), bi = hash_attr(o, CKA_ID);

	o->next_label = os->by_label[bl];
	os->by_label[bl] = o;
	o->next_id = os->by_id[bi];
	os->by_id[bi] = o;
}

static void
unindex_names(struct p11m_objset *os, struct p11m_obj *o)
{
	chain_unlink(&os->by_label[hash_attr(o, CKA_LABEL)], o,
	    offsetof(struct p11m_obj, next_label));
	chain_unlink(&os->by_id[hash_attr(o, CKA_ID)], o,
	    offsetof(struct p11m_obj, next_id));
}

void
p11m_obj_free(struct p11m_obj *o)
{
	if (o == NULL) {
		return;
	}
	p11m_attrs_free(&o->a);
	ml_p256_key_free(o->pub);
	ml_freezero(o->secret, o->secret_len);
	free(o);
}

struct p11m_obj *
p11m_obj_new(void)
{
	struct p11m_obj *o = calloc(1, sizeof(*o));

	if (o != NULL) {
		o->kt = (CK_KEY_TYPE)-1;
		o->chip_secret = -1;
	}
	return o;
}

void
p11m_objset_clear(struct p11m_objset *os)
{
	size_t i;

	for (i = 0; i < os->n; i++) {
		p11m_obj_free(os->v[i]);
	}
	free(os->v);
	free(os->pending);
	free(os->list);
	memset(os, 0, sizeof(*os));
}

CK_RV
p11m_objset_add(struct p11m_slot *sl, struct p11m_obj *o)
{
	struct p11m_objset *os = &sl->objs;
	size_t b;

	if (os->n == os->cap) {
		size_t cap = os->cap == 0 ? 64 : os->cap * 2;
		struct p11m_obj **v = realloc(os->v, cap * sizeof(*v));

		if (v == NULL) {
			return CKR_HOST_MEMORY;
		}
		os->v = v;
		os->cap = cap;
	}
	o->h = p11m_next_object_handle();
	o->pos = os->n;
	os->v[os->n++] = o;
	b = hash_handle(o->h);
	o->next_h = os->by_h[b];
	os->by_h[b] = o;
	b = class_bucket(o->cls);
	o->next_class = os->by_class[b];
	os->by_class[b] = o;
	index_names(os, o);
	if (!o->token) {
		os->nsession++;
	}
	return CKR_OK;
}

void
p11m_objset_remove(struct p11m_slot *sl, struct p11m_obj *o)
{
	struct p11m_objset *os = &sl->objs;
	size_t pos = o->pos;

	chain_unlink(&os->by_h[hash_handle(o->h)], o,
	    offsetof(struct p11m_obj, next_h));
	chain_unlink(&os->by_class[class_bucket(o->cls)], o,
	    offsetof(struct p11m_obj, next_class));
	unindex_names(os, o);
	if (!o->token && os->nsession > 0) {
		os->nsession--;
	}
	os->v[pos] = os->v[--os->n];
	os->v[pos]->pos = pos;
	p11m_obj_free(o);
}

void
p11m_objset_reindex(struct p11m_slot *sl, struct p11m_obj *o,
    void (*change)(struct p11m_obj *, void *), void *arg)
{
	unindex_names(&sl->objs, o);
	change(o, arg);
	index_names(&sl->objs, o);
}

static bool
obj_visible(const struct p11m_slot *sl, const struct p11m_obj *o)
{
	return !o->priv || sl->login == CKU_USER;
}

struct p11m_obj *
p11m_obj_lookup(struct p11m_slot *sl, const struct p11m_session *s,
    CK_OBJECT_HANDLE h)
{
	struct p11m_obj *o;

	(void)s;
	for (o = sl->objs.by_h[hash_handle(h)]; o != NULL; o = o->next_h) {
		if (o->h == h) {
			return obj_visible(sl, o) ? o : NULL;
		}
	}
	return NULL;
}

/*
 * Walk the most selective index the template allows (label, ID, class,
 * else everything) and call fn for each object visible on the slot that
 * matches every attribute of tmpl; stop at fn's first failure.  This is
 * why C_FindObjects never rescans storage.
 */
CK_RV
p11m_objset_match(struct p11m_slot *sl, const CK_ATTRIBUTE *tmpl, CK_ULONG n,
    CK_RV (*fn)(struct p11m_obj *, void *), void *arg)
{
	struct p11m_objset *os = &sl->objs;
	const CK_ATTRIBUTE *key;
	struct p11m_obj *o, *next;
	CK_OBJECT_CLASS cls;
	size_t i = 0;
	int by;		/* 0 label, 1 ID, 2 class, 3 all */
	CK_RV rv;

	if ((key = p11m_tmpl_find(tmpl, n, CKA_LABEL)) != NULL) {
		by = 0;
		o = os->by_label[hash_bytes(key->pValue, key->ulValueLen)];
	} else if ((key = p11m_tmpl_find(tmpl, n, CKA_ID)) != NULL) {
		by = 1;
		o = os->by_id[hash_bytes(key->pValue, key->ulValueLen)];
	} else if ((key = p11m_tmpl_find(tmpl, n, CKA_CLASS)) != NULL &&
	    key->ulValueLen == sizeof(CK_OBJECT_CLASS)) {
		by = 2;
		memcpy(&cls, key->pValue, sizeof(cls));
		o = os->by_class[class_bucket(cls)];
	} else {
		by = 3;
		o = os->n > 0 ? os->v[0] : NULL;
	}
	for (; o != NULL; o = next) {
		switch (by) {
		case 0:
			next = o->next_label;
			break;
		case 1:
			next = o->next_id;
			break;
		case 2:
			next = o->next_class;
			break;
		default:
			next = ++i < os->n ? os->v[i] : NULL;
			break;
		}
		if (obj_visible(sl, o) && p11m_attrs_match(&o->a, tmpl, n) &&
		    (rv = fn(o, arg)) != CKR_OK) {
			return rv;
		}
	}
	return CKR_OK;
}

/* ---- chip objects ---- */

static CK_OBJECT_CLASS
class_from_chip(uint8_t cls)
{
	switch (cls) {
	case OBJ_CLASS_DATA:
		return CKO_DATA;
	case OBJ_CLASS_CERT:
		return CKO_CERTIFICATE;
	case OBJ_CLASS_PUBKEY:
		return CKO_PUBLIC_KEY;
	case OBJ_CLASS_PRIVKEY:
		return CKO_PRIVATE_KEY;
	default:
		return (CK_OBJECT_CLASS)-1;
	}
}

/*
 * The chip authentication key (BN-8 clone detection) and its public half,
 * the one rule wherever such an object is made (load, GEN KEYPAIR):
 * labelled "chip", usable only through CKM_MINTLINE_INTERNAL_AUTH, never
 * destroyed or modified, and shown without a PIN, since INTERNAL
 * AUTHENTICATE needs none (a verification desk has no PIN).
 */
CK_RV
p11m_obj_chipkey_rule(struct p11m_obj *o)
{
	const struct p11m_attr *l = p11m_attrs_get(&o->a, CKA_LABEL);
	CK_RV rv = CKR_OK;

	if (l == NULL || l->len == 0) {
		rv = p11m_attrs_set(&o->a, CKA_LABEL, "chip", 4);
	}
	if (rv == CKR_OK && o->cls == CKO_PRIVATE_KEY &&
	    ((rv = p11m_attrs_set_bool(&o->a, CKA_SIGN, false)) != CKR_OK ||
	    (rv = p11m_attrs_set_bool(&o->a, CKA_DERIVE, false)) != CKR_OK ||
	    (rv = p11m_attrs_set_bool(&o->a, CKA_MODIFIABLE, false)) !=
	    CKR_OK)) {
		return rv;
	}
	if (rv == CKR_OK &&
	    (rv = p11m_attrs_set_bool(&o->a, CKA_DESTROYABLE, false)) ==
	    CKR_OK) {
		rv = p11m_attrs_set_bool(&o->a, CKA_PRIVATE, false);
	}
	if (rv == CKR_OK) {
		o->priv = false;
	}
	return rv;
}

/* The attributes a key object shows whatever its blob says. */
CK_RV
p11m_obj_key_fixups(struct p11m_obj *o)
{
	uint8_t der[P11M_EC_POINT_DER_LEN];
	CK_RV rv = CKR_OK;

	if (o->has_point) {
		p11m_ec_point_der(o->point, der);
		rv = p11m_attrs_set(&o->a, CKA_EC_POINT, der, sizeof(der));
	}
	if (rv == CKR_OK) {
		rv = p11m_attrs_set(&o->a, CKA_EC_PARAMS, ml_p256_oid_der,
		    sizeof(ml_p256_oid_der));
	}
	if (rv == CKR_OK && o->cls == CKO_PRIVATE_KEY) {
		if ((rv = p11m_attrs_set_bool(&o->a, CKA_SENSITIVE, true)) ==
		    CKR_OK &&
		    (rv = p11m_attrs_set_bool(&o->a, CKA_EXTRACTABLE, false)) ==
		    CKR_OK &&
		    (rv = p11m_attrs_set_bool(&o->a, CKA_ALWAYS_SENSITIVE,
		    true)) == CKR_OK &&
		    (rv = p11m_attrs_set_bool(&o->a, CKA_NEVER_EXTRACTABLE,
		    true)) == CKR_OK) {
			rv = p11m_attrs_set_bool(&o->a, CKA_COPYABLE, false);
		}
	}
	return rv;
}

CK_RV
p11m_obj_from_chip(uint16_t id, uint8_t cls, uint8_t flags,
    const uint8_t *blob, size_t blob_len, const uint8_t *point,
    struct p11m_obj **ret)
{
	struct p11m_obj *o = NULL;
	struct p11m_attrs parsed = { 0 }, a = { 0 };
	CK_RV rv = CKR_OK;
	CK_ULONG ul;

	if ((o = p11m_obj_new()) == NULL) {
		return CKR_HOST_MEMORY;
	}
	o->token = true;
	o->chip_id = id;
	o->chip_flags = flags;
	if ((o->cls = class_from_chip(cls)) == (CK_OBJECT_CLASS)-1) {
		rv = CKR_DEVICE_ERROR;
		goto out;
	}
	if (o->cls == CKO_PUBLIC_KEY || o->cls == CKO_PRIVATE_KEY) {
		o->kt = CKK_EC;
	}
	if (point != NULL) {
		memcpy(o->point, point, ML_P256_PUB_LEN);
		o->has_point = o->chip_point = true;
	}
	/*
	 * A blob we cannot parse (another host's, or none: the chip's own
	 * authentication key) still gives a usable object from the class
	 * and flags; it is logged, not fatal.
	 */
	if (blob_len > 0 && p11m_blob_parse(blob, blob_len, &parsed) != 0) {
		ml_warn("pkcs11: object %04x: attribute blob ignored", id);
		p11m_attrs_free(&parsed);
		parsed = (struct p11m_attrs){ 0 };
	}
	/* Class-defining attributes come from the chip, never the blob. */
	p11m_attrs_del(&parsed, CKA_CLASS);
	p11m_attrs_del(&parsed, CKA_KEY_TYPE);
	p11m_attrs_del(&parsed, CKA_TOKEN);
	if ((rv = p11m_attr_apply(P11M_AOP_DERIVE, o->cls, o->kt, NULL, 0,
	    NULL, false, &a)) != CKR_OK) {
		goto out;
	}
	/* Overlay what the blob says. */
	{
		size_t i;

		for (i = 0; i < parsed.n; i++) {
			rv = p11m_attrs_set(&a, parsed.v[i].type,
			    parsed.v[i].val, parsed.v[i].len);
			if (rv != CKR_OK) {
				goto out;
			}
		}
	}
	o->a = a;
	a = (struct p11m_attrs){ 0 };
	if ((rv = p11m_attrs_set_bool(&o->a, CKA_TOKEN, true)) != CKR_OK) {
		goto out;
	}
	if (flags & OBJ_F_PRIVATE) {
		if ((rv = p11m_attrs_set_bool(&o->a, CKA_PRIVATE, true)) !=
		    CKR_OK) {
			goto out;
		}
	}
	o->priv = p11m_attrs_bool(&o->a, CKA_PRIVATE, false);
	if (o->kt == CKK_EC && !o->has_point) {
		/* A public key created by C_CreateObject: its point is in
		 * the blob. */
		const struct p11m_attr *p = p11m_attrs_get(&o->a, CKA_EC_POINT);

		if (p != NULL && p11m_ec_point_parse(p->val, p->len,
		    o->point) == CKR_OK) {
			o->has_point = true;
		}
	}
	if (o->kt == CKK_EC) {
		if ((rv = p11m_obj_key_fixups(o)) != CKR_OK) {
			goto out;
		}
		if (!p11m_attrs_ulong(&o->a, CKA_KEY_GEN_MECHANISM, &ul)) {
			rv = p11m_attrs_set_ulong(&o->a, CKA_KEY_GEN_MECHANISM,
			    CKM_EC_KEY_PAIR_GEN);
		}
		if (rv == CKR_OK && p11m_attrs_get(&o->a, CKA_LOCAL) == NULL) {
			rv = p11m_attrs_set_bool(&o->a, CKA_LOCAL, true);
		}
		if (rv != CKR_OK) {
			goto out;
		}
	}
	if ((flags & OBJ_F_CHIPKEY) &&
	    (rv = p11m_obj_chipkey_rule(o)) != CKR_OK) {
		goto out;
	}
	if (flags & OBJ_F_READONLY) {
		if ((rv = p11m_attrs_set_bool(&o->a, CKA_MODIFIABLE, false)) !=
		    CKR_OK ||
		    (rv = p11m_attrs_set_bool(&o->a, CKA_DESTROYABLE, false)) !=
		    CKR_OK) {
			goto out;
		}
	}
	*ret = o;
	o = NULL;
out:
	p11m_attrs_free(&parsed);
	p11m_attrs_free(&a);
	p11m_obj_free(o);
	return rv;
}

/* READ OBJECT id and add it.  *ret_private: the chip wants a login. */
static CK_RV
read_chip_object(struct p11m_slot *sl, uint16_t id, bool *ret_private)
{
	uint8_t *buf = NULL;
	struct ml_rd rd, v, attrs = { 0 };
	const uint8_t *point = NULL;
	struct p11m_obj *o = NULL;
	uint8_t cls = 0xff, flags = 0;
	bool have_cls = false;
	uint32_t tag;
	size_t n = 0;
	uint16_t sw;
	CK_RV rv;
	int r = 0;

	*ret_private = false;
	if ((buf = malloc(OBJ_MAX_ATTRS + 256)) == NULL) {
		return CKR_HOST_MEMORY;
	}
	rv = p11m_chip_apdu(sl, CLA_PROP, INS_READ_OBJECT, (uint8_t)(id >> 8),
	    (uint8_t)id, NULL, 0, 65536, buf, OBJ_MAX_ATTRS + 256, &n, &sw);
	if (rv != CKR_OK) {
		goto out;
	}
	if (sw == SW_SECURITY_NOT_SATISFIED) {
		*ret_private = true;
		goto out;
	}
	if ((rv = p11m_sw_to_ckr(sw, P11M_CTX_OBJECT)) != CKR_OK) {
		goto out;
	}
	rd = ML_RD_INIT(buf, n);
	while (ml_rd_left(&rd) > 0) {
		ML_TRY(ml_tlv_next(&rd, &tag, &v));
		switch (tag) {
		case TAG_OBJ_CLASS:
			ML_TRY(ml_rd_u8(&v, &cls));
			have_cls = true;
			break;
		case TAG_OBJ_FLAGS:
			ML_TRY(ml_rd_u8(&v, &flags));
			break;
		case TAG_OBJ_ATTRS:
			attrs = v;
			break;
		case TAG_OBJ_POINT:
			ML_ENSURE(ml_rd_left(&v) == ML_P256_PUB_LEN,
			    ML_ERR_FORMAT);
			point = ml_rd_ptr(&v);
			break;
		default:
			break;
		}
	}
	ML_ENSURE(have_cls, ML_ERR_FORMAT);
out:
	if (r != 0) {
		rv = CKR_DEVICE_ERROR;
	}
	if (rv == CKR_OK && !*ret_private) {
		rv = p11m_obj_from_chip(id, cls, flags,
		    attrs.p != NULL ? ml_rd_ptr(&attrs) : NULL,
		    attrs.p != NULL ? ml_rd_left(&attrs) : 0, point, &o);
		if (rv == CKR_OK) {
			if ((rv = p11m_objset_add(sl, o)) != CKR_OK) {
				p11m_obj_free(o);
			}
		}
	}
	ml_freezero(buf, OBJ_MAX_ATTRS + 256);
	return rv;
}

/*
 * The note's feature record as a read-only data object (docs/pkcs11.md).
 *
 *= REQ BN-8
 *# Notes are checked by comparing feature information: a verification
 *# desk reads a note and gets a verdict.
 */
static CK_RV
load_feature(struct p11m_slot *sl)
{
	uint8_t buf[NOTE_MAX_FEATURE + 512];
	struct p11m_obj *o = NULL;
	size_t n = 0;
	uint16_t sw;
	CK_RV rv;

	rv = p11m_chip_apdu(sl, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0,
	    65536, buf, sizeof(buf), &n, &sw);
	if (rv != CKR_OK || sw != SW_OK) {
		return rv;
	}
	if ((o = p11m_obj_new()) == NULL) {
		return CKR_HOST_MEMORY;
	}
	o->cls = CKO_DATA;
	o->token = true;
	o->vendor = P11M_VOBJ_FEATURE;
	if ((rv = p11m_attr_apply(P11M_AOP_DERIVE, CKO_DATA, 0, NULL, 0, NULL,
	    false, &o->a)) != CKR_OK ||
	    (rv = p11m_attrs_set_bool(&o->a, CKA_TOKEN, true)) != CKR_OK ||
	    (rv = p11m_attrs_set_bool(&o->a, CKA_MODIFIABLE, false)) != CKR_OK ||
	    (rv = p11m_attrs_set_bool(&o->a, CKA_DESTROYABLE, false)) !=
	    CKR_OK ||
	    (rv = p11m_attrs_set_bool(&o->a, CKA_COPYABLE, false)) != CKR_OK ||
	    (rv = p11m_attrs_set(&o->a, CKA_LABEL, "feature", 7)) != CKR_OK ||
	    (rv = p11m_attrs_set(&o->a, CKA_APPLICATION, FEATURE_APP,
	    strlen(FEATURE_APP))) != CKR_OK ||
	    (rv = p11m_attrs_set(&o->a, CKA_VALUE, buf, n)) != CKR_OK ||
	    (rv = p11m_objset_add(sl, o)) != CKR_OK) {
		p11m_obj_free(o);
	}
	return rv;
}

/*
 * A note's installed issuer keys (GET DATA 04) as read-only public key
 * objects labelled "issuer 0", "issuer 1", ... with CKA_ID the index (the
 * one a written record names), so that pkcs11-tool -O shows which keys may
 * authorise the note's write (BN-4); CHANGE ISSUER (mintline-station
 * rotate-issuer) changes them, and the store's change counter reloads them.
 */
static CK_RV
load_issuers(struct p11m_slot *sl)
{
	uint8_t buf[1 + NOTE_MAX_ISSUERS * ML_P256_PUB_LEN], id;
	char label[16];
	struct p11m_obj *o = NULL;
	size_t n = 0, i;
	CK_RV rv;

	rv = p11m_chip_cmd(sl, P11M_CTX_DEFAULT, CLA_ISO, INS_GET_DATA,
	    GD_NOTE_ISSUERS, 0, NULL, 0, 256, buf, sizeof(buf), &n);
	if (rv != CKR_OK) {
		return rv;
	}
	if (n < 1 || buf[0] > NOTE_MAX_ISSUERS ||
	    n != 1 + (size_t)buf[0] * ML_P256_PUB_LEN) {
		return CKR_DEVICE_ERROR;
	}
	for (i = 0; i < buf[0]; i++) {
		if ((rv = p11m_obj_from_chip(0, OBJ_CLASS_PUBKEY, 0, NULL, 0,
		    buf + 1 + i * ML_P256_PUB_LEN, &o)) != CKR_OK) {
			return rv;
		}
		o->vendor = P11M_VOBJ_ISSUER;
		id = (uint8_t)i;
		snprintf(label, sizeof(label), "issuer %zu", i);
		if ((rv = p11m_attrs_set(&o->a, CKA_LABEL, label,
		    strlen(label))) != CKR_OK ||
		    (rv = p11m_attrs_set(&o->a, CKA_ID, &id, 1)) != CKR_OK ||
		    (rv = p11m_attrs_set_bool(&o->a, CKA_LOCAL, false)) !=
		    CKR_OK ||
		    (rv = p11m_attrs_set_bool(&o->a, CKA_MODIFIABLE, false)) !=
		    CKR_OK ||
		    (rv = p11m_attrs_set_bool(&o->a, CKA_DESTROYABLE, false)) !=
		    CKR_OK ||
		    (rv = p11m_attrs_set_bool(&o->a, CKA_COPYABLE, false)) !=
		    CKR_OK ||
		    (rv = p11m_objset_add(sl, o)) != CKR_OK) {
			p11m_obj_free(o);
			return rv;
		}
		o = NULL;
	}
	return CKR_OK;
}

/*
 * A note's chip authentication private key, shown without a login: the
 * chip answers INTERNAL AUTHENTICATE without one (a verification desk has
 * no PIN), so the object a desk needs for CKM_MINTLINE_INTERNAL_AUTH is
 * public; its blob (behind the PIN) is not read.  Point: GET DATA 02.
 */
static CK_RV
load_chipkey(struct p11m_slot *sl, uint16_t id, uint8_t flags)
{
	uint8_t point[ML_P256_PUB_LEN];
	struct p11m_obj *o = NULL;
	size_t n = 0;
	CK_RV rv;

	rv = p11m_chip_cmd(sl, P11M_CTX_DEFAULT, CLA_ISO, INS_GET_DATA,
	    GD_CHIP_PUBKEY, 0, NULL, 0, 256, point, sizeof(point), &n);
	if (rv != CKR_OK || n != sizeof(point)) {
		return rv != CKR_OK ? rv : CKR_DEVICE_ERROR;
	}
	if ((rv = p11m_obj_from_chip(id, OBJ_CLASS_PRIVKEY,
	    flags & ~OBJ_F_PRIVATE, NULL, 0, point, &o)) != CKR_OK) {
		return rv;
	}
	o->chip_flags = flags;
	if ((rv = p11m_objset_add(sl, o)) != CKR_OK) {
		p11m_obj_free(o);
		return rv;
	}
	return CKR_OK;
}

static CK_RV
pending_add(struct p11m_objset *os, uint16_t id)
{
	uint16_t *p = realloc(os->pending, (os->npending + 1) * sizeof(*p));

	if (p == NULL) {
		return CKR_HOST_MEMORY;
	}
	os->pending = p;
	os->pending[os->npending++] = id;
	return CKR_OK;
}

CK_RV
p11m_objset_load(struct p11m_slot *sl)
{
	struct p11m_objset *os = &sl->objs;
	uint8_t *list = NULL;
	size_t n = 0, i;
	bool priv;
	CK_RV rv;

	if (os->loaded) {
		return CKR_OK;
	}
	if (!(sl->state & INFO_F_INITIALIZED)) {
		os->loaded = true;	/* a blank chip has no objects */
		return CKR_OK;
	}
	if ((list = malloc(OBJ_MAX_COUNT * OBJ_LIST_ENTRY_LEN + 2)) == NULL) {
		return CKR_HOST_MEMORY;
	}
	p11m_chip_lock(sl);
	rv = p11m_chip_cmd(sl, P11M_CTX_OBJECT, CLA_PROP, INS_LIST_OBJECTS, 0,
	    0, NULL, 0, 65536, list, OBJ_MAX_COUNT * OBJ_LIST_ENTRY_LEN + 2,
	    &n);
	if (rv == CKR_FUNCTION_NOT_SUPPORTED) {
		/* A chip kind without an object store: no token objects. */
		n = 0;
		rv = CKR_OK;
	}
	if (rv != CKR_OK) {
		goto out;
	}
	if (n % OBJ_LIST_ENTRY_LEN != 0) {
		rv = CKR_DEVICE_ERROR;
		goto out;
	}
	/* Drop any earlier partial load (session objects stay). */
	for (i = os->n; i > 0; i--) {
		if (os->v[i - 1]->token) {
			p11m_objset_remove(sl, os->v[i - 1]);
		}
	}
	os->npending = 0;
	for (i = 0; i < n; i += OBJ_LIST_ENTRY_LEN) {
		uint16_t id = (uint16_t)((list[i] << 8) | list[i + 1]);
		uint8_t cls = list[i + 2], flags = list[i + 3];

		if ((rv = read_chip_object(sl, id, &priv)) != CKR_OK) {
			goto out;
		}
		if (priv && cls == OBJ_CLASS_PRIVKEY &&
		    (flags & OBJ_F_CHIPKEY)) {
			rv = load_chipkey(sl, id, flags);
		} else if (priv) {
			rv = pending_add(os, id);
		}
		if (rv != CKR_OK) {
			goto out;
		}
	}
	if (sl->kind == CHIP_KIND_NOTE && (sl->state & INFO_F_WRITTEN) &&
	    (rv = load_feature(sl)) != CKR_OK) {
		goto out;
	}
	if (sl->kind == CHIP_KIND_NOTE && (rv = load_issuers(sl)) != CKR_OK) {
		goto out;
	}
	os->loaded = true;
	free(os->list);
	os->list = list;
	os->list_len = n;
	os->store_gen = sl->store_gen;
	list = NULL;
out:
	p11m_chip_unlock(sl);
	free(list);
	return rv;
}

void
p11m_objset_list_note(struct p11m_slot *sl, uint16_t id, uint8_t cls,
    uint8_t flags, size_t attrs_len)
{
	struct p11m_objset *os = &sl->objs;
	uint8_t *e = NULL, *nl;
	size_t i;

	if (os->list == NULL) {
		return;
	}
	for (i = 0; i + OBJ_LIST_ENTRY_LEN <= os->list_len;
	    i += OBJ_LIST_ENTRY_LEN) {
		if (((os->list[i] << 8) | os->list[i + 1]) == id) {
			e = os->list + i;
			break;
		}
	}
	if (cls == 0xff) {
		if (e != NULL) {
			memmove(e, e + OBJ_LIST_ENTRY_LEN, os->list_len - i -
			    OBJ_LIST_ENTRY_LEN);
			os->list_len -= OBJ_LIST_ENTRY_LEN;
		}
		return;
	}
	if (e == NULL) {
		/* The chip appends new objects at the end of its list. */
		if ((nl = realloc(os->list, os->list_len +
		    OBJ_LIST_ENTRY_LEN)) == NULL) {
			free(os->list);
			os->list = NULL;	/* revalidation then reloads */
			os->list_len = 0;
			os->loaded = false;
			return;
		}
		os->list = nl;
		e = os->list + os->list_len;
		os->list_len += OBJ_LIST_ENTRY_LEN;
	}
	e[0] = (uint8_t)(id >> 8);
	e[1] = (uint8_t)id;
	e[2] = cls;
	e[3] = flags;
	e[4] = (uint8_t)(attrs_len >> 8);
	e[5] = (uint8_t)attrs_len;
}

CK_RV
p11m_objset_sync(struct p11m_slot *sl)
{
	struct p11m_objset *os = &sl->objs;
	CK_RV rv;

	if (!os->loaded || os->list == NULL) {
		return CKR_OK;
	}
	p11m_chip_lock(sl);
	rv = p11m_slot_read_info(sl);
	p11m_chip_unlock(sl);
	if (rv != CKR_OK) {
		return rv;
	}
	if (sl->has_store_gen && sl->store_gen == os->store_gen) {
		return CKR_OK;
	}
	if ((rv = p11m_objset_revalidate(sl)) == CKR_OK) {
		os->store_gen = sl->store_gen;
	}
	return rv;
}

CK_RV
p11m_objset_revalidate(struct p11m_slot *sl)
{
	struct p11m_objset *os = &sl->objs;
	uint8_t *list = NULL;
	size_t n = 0;
	CK_RV rv;

	if (!os->loaded || os->list == NULL) {
		return CKR_OK;
	}
	if ((list = malloc(OBJ_MAX_COUNT * OBJ_LIST_ENTRY_LEN + 2)) == NULL) {
		return CKR_HOST_MEMORY;
	}
	p11m_chip_lock(sl);
	rv = p11m_chip_cmd(sl, P11M_CTX_OBJECT, CLA_PROP, INS_LIST_OBJECTS, 0,
	    0, NULL, 0, 65536, list, OBJ_MAX_COUNT * OBJ_LIST_ENTRY_LEN + 2,
	    &n);
	p11m_chip_unlock(sl);
	if (rv == CKR_OK && (n != os->list_len ||
	    memcmp(list, os->list, n) != 0)) {
		os->loaded = false;
		rv = p11m_objset_load(sl);
		if (rv == CKR_OK && sl->login == CKU_USER) {
			rv = p11m_objset_load_private(sl);
		}
	}
	free(list);
	return rv;
}

CK_RV
p11m_objset_load_private(struct p11m_slot *sl)
{
	struct p11m_objset *os = &sl->objs;
	CK_RV rv = CKR_OK;
	bool priv;

	if (!os->loaded) {
		return p11m_objset_load(sl);
	}
	p11m_chip_lock(sl);
	while (os->npending > 0) {
		rv = read_chip_object(sl, os->pending[os->npending - 1], &priv);
		if (rv != CKR_OK || priv) {
			break;
		}
		os->npending--;
	}
	p11m_chip_unlock(sl);
	return rv;
}

/*
 * What a session object holds in the chip goes with it: a volatile
 * secret key, or the chip objects of a session key pair.
 */
void
p11m_obj_destroy_chip_secret(struct p11m_slot *sl, struct p11m_obj *o)
{
	if (sl->gen == 0) {
		return;
	}
	if (o->chip_secret >= 0) {
		(void)p11m_chip_cmd(sl, P11M_CTX_DEFAULT, CLA_PROP,
		    INS_SECRET_DESTROY, (uint8_t)o->chip_secret, 0, NULL, 0, 0,
		    NULL, 0, NULL);
		o->chip_secret = -1;
	}
	if (!o->token && o->chip_id != 0) {
		(void)p11m_chip_cmd(sl, P11M_CTX_OBJECT, CLA_PROP,
		    INS_DELETE_OBJECT, (uint8_t)(o->chip_id >> 8),
		    (uint8_t)o->chip_id, NULL, 0, 0, NULL, 0, NULL);
		p11m_objset_list_note(sl, o->chip_id, 0xff, 0, 0);
		o->chip_id = 0;
	}
}

void
p11m_objset_release_chip(struct p11m_slot *sl)
{
	size_t i;

	for (i = 0; i < sl->objs.n; i++) {
		p11m_obj_destroy_chip_secret(sl, sl->objs.v[i]);
	}
}

void
p11m_objset_drop_private(struct p11m_slot *sl)
{
	struct p11m_objset *os = &sl->objs;
	size_t i;
	CK_RV rv;

	/* Their handles become invalid (v2.40 C_Logout); token objects are
	 * read again, with new handles, at the next login. */
	for (i = os->n; i > 0; i--) {
		struct p11m_obj *o = os->v[i - 1];

		if (!o->priv) {
			continue;
		}
		if (o->token && o->vendor == P11M_VOBJ_NONE) {
			if ((rv = pending_add(os, o->chip_id)) != CKR_OK) {
				/* Cannot remember it: reload everything. */
				os->loaded = false;
			}
		}
		p11m_obj_destroy_chip_secret(sl, o);
		p11m_objset_remove(sl, o);
	}
}

void
p11m_objset_drop_session(struct p11m_slot *sl, CK_SESSION_HANDLE owner)
{
	struct p11m_objset *os = &sl->objs;
	size_t i;

	/* Most sessions made no object: no walk over the token's. */
	for (i = os->nsession > 0 ? os->n : 0; i > 0; i--) {
		struct p11m_obj *o = os->v[i - 1];

		if (!o->token && o->owner == owner) {
			p11m_obj_destroy_chip_secret(sl, o);
			p11m_objset_remove(sl, o);
		}
	}
}

/* ---- writing token objects ---- */

static uint8_t
chip_class(CK_OBJECT_CLASS cls)
{
	switch (cls) {
	case CKO_CERTIFICATE:
		return OBJ_CLASS_CERT;
	case CKO_PUBLIC_KEY:
		return OBJ_CLASS_PUBKEY;
	case CKO_PRIVATE_KEY:
		return OBJ_CLASS_PRIVKEY;
	default:
		return OBJ_CLASS_DATA;
	}
}

/*
 * The blob of an object: its attributes less what the chip itself
 * records (class, token-ness, key type) and less the chip's own point.
 */
int
p11m_obj_blob(const struct p11m_obj *o, struct ml_wr *w)
{
	struct p11m_attrs a = { 0 };
	size_t i;
	int r;

	for (i = 0; i < o->a.n; i++) {
		CK_ATTRIBUTE_TYPE t = o->a.v[i].type;

		if (t == CKA_CLASS || t == CKA_TOKEN || t == CKA_KEY_TYPE ||
		    (t == CKA_EC_POINT && o->chip_point) ||
		    t == CKA_EC_PARAMS || t == CKA_ALWAYS_SENSITIVE ||
		    t == CKA_NEVER_EXTRACTABLE || t == CKA_SENSITIVE ||
		    t == CKA_EXTRACTABLE) {
			continue;
		}
		if (p11m_attrs_set(&a, t, o->a.v[i].val, o->a.v[i].len) !=
		    CKR_OK) {
			p11m_attrs_free(&a);
			return ML_ERR_NOMEM;
		}
	}
	/* A public key created by C_CreateObject keeps its point here. */
	if (o->cls == CKO_PUBLIC_KEY && !o->chip_point) {
		const struct p11m_attr *p = p11m_attrs_get(&o->a, CKA_EC_PARAMS);

		if (p != NULL && p11m_attrs_set(&a, CKA_EC_PARAMS, p->val,
		    p->len) != CKR_OK) {
			p11m_attrs_free(&a);
			return ML_ERR_NOMEM;
		}
	}
	r = p11m_blob_write(&a, w);
	p11m_attrs_free(&a);
	return r;
}

CK_RV
p11m_obj_store(struct p11m_slot *sl, struct p11m_obj *o)
{
	struct ml_wr w = ml_wr_dyn(OBJ_MAX_ATTRS);
	CK_RV rv;
	int r;

	if ((r = p11m_obj_blob(o, &w)) != 0) {
		rv = r == ML_ERR_TOO_LARGE ? CKR_DEVICE_MEMORY :
		    ml_err_to_ckr(r);
		goto out;
	}
	rv = p11m_chip_cmd(sl, P11M_CTX_OBJECT, CLA_PROP, INS_UPDATE_OBJECT,
	    (uint8_t)(o->chip_id >> 8), (uint8_t)o->chip_id, w.p, w.len, 0,
	    NULL, 0, NULL);
	if (rv == CKR_OK) {
		p11m_objset_list_note(sl, o->chip_id, chip_class(o->cls),
		    o->chip_flags, w.len);
	}
out:
	ml_wr_free(&w);
	return rv;
}

/* CREATE OBJECT for a new token object (data, certificate, public key). */
CK_RV
p11m_obj_create_on_chip(struct p11m_slot *sl, struct p11m_obj *o)
{
	struct ml_wr w = ml_wr_dyn(2 + OBJ_MAX_ATTRS);
	uint8_t flags = 0, id[2];
	size_t n = 0;
	CK_RV rv;
	int r;

	if (o->priv) {
		flags |= OBJ_F_PRIVATE;
	}
	if (!p11m_attrs_bool(&o->a, CKA_MODIFIABLE, true) &&
	    !p11m_attrs_bool(&o->a, CKA_DESTROYABLE, true)) {
		flags |= OBJ_F_READONLY;
	}
	if ((r = ml_wr_u8(&w, chip_class(o->cls))) != 0 ||
	    (r = ml_wr_u8(&w, flags)) != 0 || (r = p11m_obj_blob(o, &w)) != 0) {
		rv = r == ML_ERR_TOO_LARGE ? CKR_DEVICE_MEMORY :
		    ml_err_to_ckr(r);
		goto out;
	}
	rv = p11m_chip_cmd(sl, P11M_CTX_OBJECT, CLA_PROP, INS_CREATE_OBJECT, 0,
	    0, w.p, w.len, 256, id, sizeof(id), &n);
	if (rv == CKR_OK && n != 2) {
		rv = CKR_DEVICE_ERROR;
	}
	if (rv == CKR_OK) {
		o->chip_id = (uint16_t)((id[0] << 8) | id[1]);
		o->chip_flags = flags;
		p11m_objset_list_note(sl, o->chip_id, chip_class(o->cls),
		    flags, w.len - 2);
	}
out:
	ml_wr_free(&w);
	return rv;
}
