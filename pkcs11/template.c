/*
 * Attribute sets and their serialization into the chip's opaque attribute
 * blob (chip_proto.h: "an opaque attribute blob that the host owns").
 * The blob is untrusted input (any host could have written the chip), so
 * it is parsed only through ml_rd, with limits on count and size.
 */
#include <stdlib.h>
#include <string.h>

#include "ml_rd.h"
#include "ml_wipe.h"
#include "p11m.h"

enum p11m_akind
p11m_attr_kind(CK_ATTRIBUTE_TYPE type)
{
	switch (type) {
	case CKA_TOKEN:
	case CKA_PRIVATE:
	case CKA_MODIFIABLE:
	case CKA_COPYABLE:
	case CKA_DESTROYABLE:
	case CKA_TRUSTED:
	case CKA_SENSITIVE:
	case CKA_ENCRYPT:
	case CKA_DECRYPT:
	case CKA_WRAP:
	case CKA_UNWRAP:
	case CKA_SIGN:
	case CKA_SIGN_RECOVER:
	case CKA_VERIFY:
	case CKA_VERIFY_RECOVER:
	case CKA_DERIVE:
	case CKA_EXTRACTABLE:
	case CKA_LOCAL:
	case CKA_NEVER_EXTRACTABLE:
	case CKA_ALWAYS_SENSITIVE:
	case CKA_WRAP_WITH_TRUSTED:
	case CKA_ALWAYS_AUTHENTICATE:
		return P11M_AK_BOOL;
	case CKA_CLASS:
	case CKA_KEY_TYPE:
	case CKA_CERTIFICATE_TYPE:
	case CKA_CERTIFICATE_CATEGORY:
	case CKA_JAVA_MIDP_SECURITY_DOMAIN:
	case CKA_NAME_HASH_ALGORITHM:
	case CKA_VALUE_LEN:
	case CKA_KEY_GEN_MECHANISM:
		return P11M_AK_ULONG;
	case CKA_START_DATE:
	case CKA_END_DATE:
		return P11M_AK_DATE;
	default:
		return P11M_AK_BYTES;
	}
}

void
p11m_attrs_free(struct p11m_attrs *a)
{
	size_t i;

	if (a == NULL) {
		return;
	}
	for (i = 0; i < a->n; i++) {
		ml_freezero(a->v[i].val, a->v[i].len);
	}
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

const struct p11m_attr *
p11m_attrs_get(const struct p11m_attrs *a, CK_ATTRIBUTE_TYPE type)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		if (a->v[i].type == type) {
			return &a->v[i];
		}
	}
	return NULL;
}

CK_RV
p11m_attrs_set(struct p11m_attrs *a, CK_ATTRIBUTE_TYPE type, const void *val,
    CK_ULONG len)
{
	struct p11m_attr *slot = NULL;
	uint8_t *copy = NULL;
	size_t i;

	if (len > 0) {
		if ((copy = malloc(len)) == NULL) {
			return CKR_HOST_MEMORY;
		}
		memcpy(copy, val, len);
	}
	for (i = 0; i < a->n; i++) {
		if (a->v[i].type == type) {
			slot = &a->v[i];
			break;
		}
	}
	if (slot == NULL) {
		if (a->n == a->cap) {
			size_t cap = a->cap == 0 ? 16 : a->cap * 2;
			struct p11m_attr *v = realloc(a->v, cap * sizeof(*v));

			if (v == NULL) {
				free(copy);
				return CKR_HOST_MEMORY;
			}
			a->v = v;
			a->cap = cap;
		}
		slot = &a->v[a->n++];
		slot->type = type;
	} else {
		ml_freezero(slot->val, slot->len);
	}
	slot->val = copy;
	slot->len = len;
	return CKR_OK;
}

CK_RV
p11m_attrs_set_bool(struct p11m_attrs *a, CK_ATTRIBUTE_TYPE type, bool v)
{
	CK_BBOOL b = v ? CK_TRUE : CK_FALSE;

	return p11m_attrs_set(a, type, &b, sizeof(b));
}

CK_RV
p11m_attrs_set_ulong(struct p11m_attrs *a, CK_ATTRIBUTE_TYPE type, CK_ULONG v)
{
	return p11m_attrs_set(a, type, &v, sizeof(v));
}

void
p11m_attrs_del(struct p11m_attrs *a, CK_ATTRIBUTE_TYPE type)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		if (a->v[i].type == type) {
			ml_freezero(a->v[i].val, a->v[i].len);
			memmove(&a->v[i], &a->v[i + 1],
			    (a->n - i - 1) * sizeof(a->v[0]));
			a->n--;
			return;
		}
	}
}

CK_RV
p11m_attrs_copy(const struct p11m_attrs *src, struct p11m_attrs *ret)
{
	struct p11m_attrs c = { 0 };
	CK_RV rv = CKR_OK;
	size_t i;

	for (i = 0; i < src->n; i++) {
		rv = p11m_attrs_set(&c, src->v[i].type, src->v[i].val,
		    src->v[i].len);
		if (rv != CKR_OK) {
			goto out;
		}
	}
	*ret = c;
	c = (struct p11m_attrs){ 0 };
out:
	p11m_attrs_free(&c);
	return rv;
}

bool
p11m_attrs_bool(const struct p11m_attrs *a, CK_ATTRIBUTE_TYPE type, bool def)
{
	const struct p11m_attr *at = p11m_attrs_get(a, type);

	if (at == NULL || at->len != sizeof(CK_BBOOL)) {
		return def;
	}
	return *(const CK_BBOOL *)at->val != CK_FALSE;
}

bool
p11m_attrs_ulong(const struct p11m_attrs *a, CK_ATTRIBUTE_TYPE type,
    CK_ULONG *ret)
{
	const struct p11m_attr *at = p11m_attrs_get(a, type);

	if (at == NULL || at->len != sizeof(CK_ULONG)) {
		return false;
	}
	memcpy(ret, at->val, sizeof(CK_ULONG));
	return true;
}

bool
p11m_attrs_match(const struct p11m_attrs *a, const CK_ATTRIBUTE *tmpl,
    CK_ULONG n)
{
	const struct p11m_attr *at;
	CK_ULONG i;

	for (i = 0; i < n; i++) {
		at = p11m_attrs_get(a, tmpl[i].type);
		if (at == NULL || at->len != tmpl[i].ulValueLen) {
			return false;
		}
		if (at->len > 0 && (tmpl[i].pValue == NULL ||
		    memcmp(at->val, tmpl[i].pValue, at->len) != 0)) {
			return false;
		}
	}
	return true;
}

/* ---- the blob ---- */

int
p11m_blob_write(const struct p11m_attrs *a, struct ml_wr *w)
{
	struct ml_wr save = *w;
	size_t i, count = 0;
	int r = 0;

	for (i = 0; i < a->n; i++) {
		if (p11m_attr_persistent(a->v[i].type)) {
			count++;
		}
	}
	ML_ENSURE(count <= P11M_MAX_TMPL_ATTRS, ML_ERR_TOO_LARGE);
	ML_TRY(ml_wr_u8(w, P11M_BLOB_VERSION));
	ML_TRY(ml_wr_u16be(w, (uint16_t)count));
	for (i = 0; i < a->n; i++) {
		const struct p11m_attr *at = &a->v[i];

		if (!p11m_attr_persistent(at->type)) {
			continue;
		}
		ML_ENSURE(at->type <= 0xffffffffUL, ML_ERR_TOO_LARGE);
		ML_TRY(ml_wr_u32be(w, (uint32_t)at->type));
		switch (p11m_attr_kind(at->type)) {
		case P11M_AK_BOOL:
			ML_ENSURE(at->len == sizeof(CK_BBOOL), ML_ERR_FORMAT);
			ML_TRY(ml_wr_u16be(w, 1));
			ML_TRY(ml_wr_u8(w, at->val[0] ? 1 : 0));
			break;
		case P11M_AK_ULONG: {
			CK_ULONG v;

			ML_ENSURE(at->len == sizeof(CK_ULONG), ML_ERR_FORMAT);
			memcpy(&v, at->val, sizeof(v));
			ML_TRY(ml_wr_u16be(w, 8));
			ML_TRY(ml_wr_u64be(w, (uint64_t)v));
			break;
		}
		default:
			ML_ENSURE(at->len <= 0xffff, ML_ERR_TOO_LARGE);
			ML_TRY(ml_wr_lv16(w, at->val, at->len));
			break;
		}
	}
out:
	if (r != 0) {
		/* Leave the writer as it was (the ml_wr contract). */
		if (w->len > save.len) {
			ml_wipe(w->p + save.len, w->len - save.len);
		}
		w->len = save.len;
	}
	return r;
}

int
p11m_blob_parse(const uint8_t *p, size_t n, struct p11m_attrs *ret)
{
	struct ml_rd rd = ML_RD_INIT(p, n);
	struct p11m_attrs a = { 0 };
	uint8_t version;
	uint16_t count, i;
	int r = 0;

	ML_ENSURE(n <= P11M_MAX_ATTR_LEN, ML_ERR_TOO_LARGE);
	ML_TRY(ml_rd_u8(&rd, &version));
	ML_ENSURE(version == P11M_BLOB_VERSION, ML_ERR_FORMAT);
	ML_TRY(ml_rd_u16be(&rd, &count));
	ML_ENSURE(count <= P11M_MAX_TMPL_ATTRS, ML_ERR_TOO_LARGE);
	for (i = 0; i < count; i++) {
		struct ml_rd val;
		uint32_t type;
		CK_ULONG ul;
		CK_BBOOL b;
		uint64_t u64;
		uint8_t u8;

		ML_TRY(ml_rd_u32be(&rd, &type));
		ML_TRY(ml_rd_lv16(&rd, P11M_MAX_ATTR_LEN, &val));
		ML_ENSURE(p11m_attrs_get(&a, type) == NULL, ML_ERR_FORMAT);
		ML_ENSURE(p11m_attr_persistent(type), ML_ERR_FORMAT);
		switch (p11m_attr_kind(type)) {
		case P11M_AK_BOOL:
			ML_TRY(ml_rd_u8(&val, &u8));
			ML_TRY(ml_rd_end(&val));
			ML_ENSURE(u8 <= 1, ML_ERR_FORMAT);
			b = u8 ? CK_TRUE : CK_FALSE;
			ML_ENSURE(p11m_attrs_set(&a, type, &b, sizeof(b)) ==
			    CKR_OK, ML_ERR_NOMEM);
			break;
		case P11M_AK_ULONG:
			ML_TRY(ml_rd_u64be(&val, &u64));
			ML_TRY(ml_rd_end(&val));
			ML_ENSURE(u64 <= (uint64_t)(CK_ULONG)-1, ML_ERR_FORMAT);
			ul = (CK_ULONG)u64;
			ML_ENSURE(p11m_attrs_set(&a, type, &ul, sizeof(ul)) ==
			    CKR_OK, ML_ERR_NOMEM);
			break;
		case P11M_AK_DATE:
			ML_ENSURE(ml_rd_left(&val) == 0 ||
			    ml_rd_left(&val) == sizeof(CK_DATE),
			    ML_ERR_FORMAT);
			/* FALLTHROUGH */
		default:
			ML_ENSURE(p11m_attrs_set(&a, type, ml_rd_ptr(&val),
			    ml_rd_left(&val)) == CKR_OK, ML_ERR_NOMEM);
			break;
		}
	}
	ML_TRY(ml_rd_end(&rd));
	*ret = a;
	a = (struct p11m_attrs){ 0 };
out:
	p11m_attrs_free(&a);
	return r;
}
