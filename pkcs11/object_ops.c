/*
 * The object calls: C_CreateObject (certificates get their subject, issuer
 * and serial from the DER), C_CopyObject, C_DestroyObject, the attribute
 * calls and C_FindObjects, over the object cache of object.c.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/x509.h>

#include "ml_wipe.h"
#include "chip.h"
#include "sw.h"
#include "p11m.h"

/* ---- certificates: subject, issuer, serial from the DER (OpenSSL) ---- */

static CK_RV
set_name(struct p11m_attrs *a, CK_ATTRIBUTE_TYPE type, const X509_NAME *nm)
{
	unsigned char *der = NULL;
	int n;
	CK_RV rv;

	if ((n = i2d_X509_NAME(nm, &der)) <= 0) {
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	rv = p11m_attrs_set(a, type, der, (CK_ULONG)n);
	OPENSSL_free(der);
	return rv;
}

static bool
attr_empty(const struct p11m_attrs *a, CK_ATTRIBUTE_TYPE type)
{
	const struct p11m_attr *at = p11m_attrs_get(a, type);

	return at == NULL || at->len == 0;
}

static CK_RV
cert_fill(struct p11m_attrs *a)
{
	const struct p11m_attr *v = p11m_attrs_get(a, CKA_VALUE);
	const unsigned char *p;
	unsigned char *der = NULL;
	X509 *x = NULL;
	CK_RV rv = CKR_OK;
	int n;

	if (v == NULL || v->len == 0) {
		return CKR_TEMPLATE_INCOMPLETE;
	}
	p = v->val;
	if ((x = X509_new_ex(ml_ossl_ctx(), NULL)) == NULL) {
		return CKR_HOST_MEMORY;
	}
	if (d2i_X509(&x, &p, (long)v->len) == NULL ||
	    p != v->val + v->len) {
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	if (attr_empty(a, CKA_SUBJECT) &&
	    (rv = set_name(a, CKA_SUBJECT, X509_get_subject_name(x))) !=
	    CKR_OK) {
		goto out;
	}
	if (attr_empty(a, CKA_ISSUER) &&
	    (rv = set_name(a, CKA_ISSUER, X509_get_issuer_name(x))) != CKR_OK) {
		goto out;
	}
	if (attr_empty(a, CKA_SERIAL_NUMBER)) {
		if ((n = i2d_ASN1_INTEGER(X509_get0_serialNumber(x),
		    &der)) <= 0) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
			goto out;
		}
		rv = p11m_attrs_set(a, CKA_SERIAL_NUMBER, der, (CK_ULONG)n);
	}
out:
	OPENSSL_free(der);
	X509_free(x);
	return rv;
}

/* ---- C_CreateObject ---- */

static bool
session_is_so(const struct p11m_session *s)
{
	return s->slot->login == CKU_SO;
}

/* Class-specific checks and computed attributes of a new object. */
static CK_RV
obj_finish(struct p11m_obj *o)
{
	const struct p11m_attr *at;
	CK_RV rv = CKR_OK;

	switch (o->cls) {
	case CKO_CERTIFICATE:
		return cert_fill(&o->a);
	case CKO_PUBLIC_KEY:
		at = p11m_attrs_get(&o->a, CKA_EC_PARAMS);
		if (at == NULL || !p11m_ec_params_ok(at->val, at->len)) {
			return CKR_ATTRIBUTE_VALUE_INVALID;
		}
		at = p11m_attrs_get(&o->a, CKA_EC_POINT);
		if (at == NULL) {
			return CKR_TEMPLATE_INCOMPLETE;
		}
		if ((rv = p11m_ec_point_parse(at->val, at->len, o->point)) !=
		    CKR_OK) {
			return rv;
		}
		o->has_point = true;
		{
			uint8_t der[P11M_EC_POINT_DER_LEN];

			/* Normalise to the v2.40 DER OCTET STRING form. */
			p11m_ec_point_der(o->point, der);
			rv = p11m_attrs_set(&o->a, CKA_EC_POINT, der,
			    sizeof(der));
		}
		if (rv == CKR_OK) {
			rv = p11m_attrs_set_bool(&o->a, CKA_LOCAL, false);
		}
		if (rv == CKR_OK) {
			rv = p11m_attrs_set_ulong(&o->a, CKA_KEY_GEN_MECHANISM,
			    CK_UNAVAILABLE_INFORMATION);
		}
		return rv;
	case CKO_SECRET_KEY:
		at = p11m_attrs_get(&o->a, CKA_VALUE);
		if (at == NULL) {
			return CKR_TEMPLATE_INCOMPLETE;
		}
		/* AES: the three key sizes; generic secrets: any length
		 * an attribute may have (docs/pkcs11.md, "Limits"). */
		if ((o->kt == CKK_AES && at->len != 16 && at->len != 24 &&
		    at->len != 32) || at->len == 0 ||
		    at->len > P11M_MAX_ATTR_LEN) {
			return CKR_ATTRIBUTE_VALUE_INVALID;
		}
		if ((o->secret = malloc(at->len)) == NULL) {
			return CKR_HOST_MEMORY;
		}
		memcpy(o->secret, at->val, at->len);
		o->secret_len = at->len;
		if ((rv = p11m_attrs_set_ulong(&o->a, CKA_VALUE_LEN,
		    at->len)) != CKR_OK ||
		    (rv = p11m_attrs_set_bool(&o->a, CKA_LOCAL, false)) !=
		    CKR_OK ||
		    (rv = p11m_attrs_set_bool(&o->a, CKA_ALWAYS_SENSITIVE,
		    false)) != CKR_OK ||
		    (rv = p11m_attrs_set_bool(&o->a, CKA_NEVER_EXTRACTABLE,
		    false)) != CKR_OK) {
			return rv;
		}
		return p11m_attrs_set_ulong(&o->a, CKA_KEY_GEN_MECHANISM,
		    CK_UNAVAILABLE_INFORMATION);
	default:
		return CKR_OK;
	}
}

/*
 * May this session add o (C_CreateObject, C_CopyObject)?  A token object
 * needs a R/W session; a token or private object needs the user logged in.
 */
static CK_RV
obj_may_add(const struct p11m_session *s, const struct p11m_obj *o)
{
	if (o->token && !p11m_session_rw(s)) {
		return CKR_SESSION_READ_ONLY;
	}
	if ((o->token || o->priv) && s->slot->login != CKU_USER) {
		return CKR_USER_NOT_LOGGED_IN;
	}
	return CKR_OK;
}

/*
 * Add a finished object to the slot's set: a token object is written to the
 * chip first, a session object is owned by s.  The slot lock is held.
 * Returns CKR_OK and sets *ret_h, after which the set owns o; on failure the
 * caller still owns o and *ret_h is untouched.
 */
static CK_RV
obj_add(struct p11m_session *s, struct p11m_obj *o,
    CK_OBJECT_HANDLE_PTR ret_h)
{
	struct p11m_slot *sl = s->slot;
	CK_RV rv;

	if (o->token) {
		p11m_chip_lock(sl);
		rv = p11m_obj_create_on_chip(sl, o);
		p11m_chip_unlock(sl);
		if (rv != CKR_OK) {
			return rv;
		}
	} else {
		o->owner = s->h;
	}
	if ((rv = p11m_objset_add(sl, o)) != CKR_OK) {
		return rv;
	}
	*ret_h = o->h;
	return CKR_OK;
}

/*
 * Note personalisation through C_CreateObject (docs/pkcs11.md, vendor
 * extensions).  On a note token, a token object that is
 *	CKO_PUBLIC_KEY, CKA_LABEL "issuer..."	-> INSTALL ISSUER (point)
 *	CKO_PUBLIC_KEY, CKA_LABEL "server..."	-> INSTALL SERVER (point)
 *	CKO_DATA, CKA_APPLICATION "mintline-lock" -> LOCK
 * is a command to the chip, not a stored object.  Returns false (and
 * leaves *ret_rv alone) for every other object.  The SO must be logged in
 * on a R/W session; once the note is locked these are CKR_ACTION_PROHIBITED.
 * On success the object stays in the module's cache as a session object of
 * s (CKA_TOKEN false); an installed issuer key is listed back from the
 * chip as the token object "issuer N" (GET DATA 04, object.c).
 */
#define NOTE_LOCK_APP	"mintline-lock"

static bool
note_perso_create(struct p11m_session *s, struct p11m_obj *o,
    CK_OBJECT_HANDLE_PTR ret_h, CK_RV *ret_rv)
{
	struct p11m_slot *sl = s->slot;
	const struct p11m_attr *at;
	uint8_t ins;
	size_t rlen = 0;
	CK_RV rv;

	if (sl->kind != CHIP_KIND_NOTE || !o->token) {
		return false;
	}
	if (o->cls == CKO_PUBLIC_KEY && o->kt == CKK_EC &&
	    (at = p11m_attrs_get(&o->a, CKA_LABEL)) != NULL && at->len >= 6 &&
	    (memcmp(at->val, "issuer", 6) == 0 ||
	    memcmp(at->val, "server", 6) == 0)) {
		ins = at->val[0] == 'i' ? INS_INSTALL_ISSUER :
		    INS_INSTALL_SERVER;
	} else if (o->cls == CKO_DATA &&
	    (at = p11m_attrs_get(&o->a, CKA_APPLICATION)) != NULL &&
	    at->len == strlen(NOTE_LOCK_APP) &&
	    memcmp(at->val, NOTE_LOCK_APP, at->len) == 0) {
		ins = INS_LOCK;
	} else {
		return false;
	}
	if (sl->state & INFO_F_LOCKED) {
		rv = CKR_ACTION_PROHIBITED;
		goto out;
	}
	if (!p11m_session_rw(s)) {
		rv = CKR_SESSION_READ_ONLY;
		goto out;
	}
	if (sl->login != CKU_SO) {
		rv = CKR_USER_NOT_LOGGED_IN;
		goto out;
	}
	if (ins != INS_LOCK && (rv = obj_finish(o)) != CKR_OK) {
		goto out;
	}
	p11m_chip_lock(sl);
	if (ins == INS_LOCK) {
		rv = p11m_chip_cmd(sl, P11M_CTX_DEFAULT, CLA_PROP, ins, 0, 0,
		    NULL, 0, 0, NULL, 0, &rlen);
	} else {
		rv = p11m_chip_cmd(sl, P11M_CTX_DEFAULT, CLA_PROP, ins, 0, 0,
		    o->point, sizeof(o->point), 0, NULL, 0, &rlen);
	}
	p11m_chip_unlock(sl);
	if (rv != CKR_OK) {
		goto out;
	}
	if (ins == INS_LOCK) {
		sl->state |= INFO_F_LOCKED;
	}
	/* Kept for the session only: nothing was stored on the chip. */
	o->token = false;
	o->owner = s->h;
	if ((rv = p11m_attrs_set_bool(&o->a, CKA_TOKEN, false)) != CKR_OK ||
	    (rv = p11m_objset_load(sl)) != CKR_OK ||
	    (rv = p11m_objset_add(sl, o)) != CKR_OK) {
		goto out;
	}
	*ret_h = o->h;
out:
	*ret_rv = rv;
	return true;
}

CK_RV
p11m_create_object(struct p11m_session *s, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR ret_h)
{
	bool locked = false;
	struct p11m_slot *sl = s->slot;
	struct p11m_obj *o = NULL;
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
	CK_RV rv;

	if ((rv = p11m_tmpl_class(tmpl, n, (CK_ULONG)-1, (CK_ULONG)-1, &cls,
	    &kt)) != CKR_OK) {
		return rv;
	}
	if ((o = p11m_obj_new()) == NULL) {
		return CKR_HOST_MEMORY;
	}
	o->cls = cls;
	o->kt = (cls == CKO_PUBLIC_KEY || cls == CKO_PRIVATE_KEY ||
	    cls == CKO_SECRET_KEY) ? kt : (CK_KEY_TYPE)-1;
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		goto out;
	}
	locked = true;
	if ((rv = p11m_attr_apply(P11M_AOP_CREATE, cls, o->kt, tmpl, n, NULL,
	    session_is_so(s), &o->a)) != CKR_OK) {
		goto out;
	}
	if (cls == CKO_PRIVATE_KEY) {
		/*
		 * Private keys are generated inside a chip, never imported.
		 *
		 *= REQ ID-14 (secure chip)
		 *# Holds PKI certificates and keys and does the crypto;
		 *# private keys never leave it.
		 */
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	o->token = p11m_attrs_bool(&o->a, CKA_TOKEN, false);
	o->priv = p11m_attrs_bool(&o->a, CKA_PRIVATE, false);
	if (o->token && cls == CKO_SECRET_KEY) {
		/* The chip store holds no secret keys (docs/pkcs11.md). */
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	if (note_perso_create(s, o, ret_h, &rv)) {
		if (rv == CKR_OK) {
			o = NULL;	/* the set owns it */
		}
		goto out;
	}
	if ((rv = obj_may_add(s, o)) != CKR_OK) {
		goto out;
	}
	if ((rv = obj_finish(o)) != CKR_OK) {
		goto out;
	}
	if ((rv = p11m_objset_load(sl)) != CKR_OK) {
		goto out;
	}
	if ((rv = obj_add(s, o, ret_h)) != CKR_OK) {
		goto out;
	}
	o = NULL;
out:
	if (locked) {
		p11m_session_unlock_slot(s);
	}
	p11m_obj_free(o);
	return rv;
}

CK_RV
p11m_copy_object(struct p11m_session *s, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR ret_h)
{
	bool locked = false;
	struct p11m_slot *sl = s->slot;
	struct p11m_obj *src, *o = NULL;
	CK_RV rv;

	if ((o = p11m_obj_new()) == NULL) {
		return CKR_HOST_MEMORY;
	}
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		goto out;
	}
	locked = true;
	if ((src = p11m_obj_lookup(sl, s, h)) == NULL) {
		rv = CKR_OBJECT_HANDLE_INVALID;
		goto out;
	}
	o->cls = src->cls;
	o->kt = src->kt;
	if ((rv = p11m_attr_apply(P11M_AOP_COPY, src->cls, src->kt, tmpl, n,
	    &src->a, session_is_so(s), &o->a)) != CKR_OK) {
		goto out;
	}
	if (src->cls == CKO_PRIVATE_KEY || src->chip_secret >= 0 ||
	    src->vendor != P11M_VOBJ_NONE) {
		rv = CKR_ACTION_PROHIBITED;
		goto out;
	}
	o->token = p11m_attrs_bool(&o->a, CKA_TOKEN, false);
	o->priv = p11m_attrs_bool(&o->a, CKA_PRIVATE, false);
	/* A copied public key keeps its point in its own blob. */
	o->has_point = src->has_point;
	o->chip_point = false;
	memcpy(o->point, src->point, sizeof(o->point));
	if (src->secret != NULL) {
		if (o->token) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
			goto out;
		}
		if ((o->secret = malloc(src->secret_len)) == NULL) {
			rv = CKR_HOST_MEMORY;
			goto out;
		}
		memcpy(o->secret, src->secret, src->secret_len);
		o->secret_len = src->secret_len;
	}
	if ((rv = obj_may_add(s, o)) != CKR_OK) {
		goto out;
	}
	if ((rv = obj_add(s, o, ret_h)) != CKR_OK) {
		goto out;
	}
	o = NULL;
out:
	if (locked) {
		p11m_session_unlock_slot(s);
	}
	p11m_obj_free(o);
	return rv;
}

CK_RV
p11m_destroy_object(struct p11m_session *s, CK_OBJECT_HANDLE h)
{
	struct p11m_slot *sl = s->slot;
	struct p11m_obj *o;
	CK_RV rv;

	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	if ((o = p11m_obj_lookup(sl, s, h)) == NULL) {
		rv = CKR_OBJECT_HANDLE_INVALID;
		goto out;
	}
	if (!p11m_attrs_bool(&o->a, CKA_DESTROYABLE, true) ||
	    o->vendor != P11M_VOBJ_NONE) {
		rv = CKR_ACTION_PROHIBITED;
		goto out;
	}
	if (o->token) {
		if (!p11m_session_rw(s)) {
			rv = CKR_SESSION_READ_ONLY;
			goto out;
		}
		rv = p11m_chip_cmd(sl, P11M_CTX_OBJECT, CLA_PROP,
		    INS_DELETE_OBJECT, (uint8_t)(o->chip_id >> 8),
		    (uint8_t)o->chip_id, NULL, 0, 0, NULL, 0, NULL);
		if (rv == CKR_OBJECT_HANDLE_INVALID) {
			rv = CKR_OK;	/* already gone from the chip */
		}
		if (rv != CKR_OK) {
			goto out;
		}
		p11m_objset_list_note(sl, o->chip_id, 0xff, 0, 0);
	}
	p11m_obj_destroy_chip_secret(sl, o);
	p11m_objset_remove(sl, o);
out:
	p11m_session_unlock_slot(s);
	return rv;
}

CK_RV
p11m_get_object_size(struct p11m_session *s, CK_OBJECT_HANDLE h,
    CK_ULONG_PTR ret_size)
{
	struct p11m_obj *o;
	CK_ULONG size = 0;
	size_t i;
	CK_RV rv;

	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	if ((o = p11m_obj_lookup(s->slot, s, h)) == NULL) {
		rv = CKR_OBJECT_HANDLE_INVALID;
	} else {
		for (i = 0; i < o->a.n; i++) {
			size += 6 + o->a.v[i].len;
		}
		*ret_size = size;
	}
	p11m_session_unlock_slot(s);
	return rv;
}

CK_RV
p11m_get_attrs(struct p11m_session *s, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	struct p11m_obj *o;
	CK_RV rv, one;
	CK_ULONG i;

	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	if ((rv = p11m_slot_check(s->slot)) != CKR_OK) {
		goto out;
	}
	if ((o = p11m_obj_lookup(s->slot, s, h)) == NULL) {
		rv = CKR_OBJECT_HANDLE_INVALID;
		goto out;
	}
	/* Every entry is processed; the answer is the last failure
	 * (v2.40 §5.7: any of them may be returned). */
	for (i = 0; i < n; i++) {
		one = p11m_attr_get(o->cls, o->kt, &o->a, &tmpl[i]);
		if (one != CKR_OK) {
			rv = one;
		}
	}
out:
	p11m_session_unlock_slot(s);
	return rv;
}

struct set_arg {
	struct p11m_attrs	*na;
};

static void
swap_attrs(struct p11m_obj *o, void *arg)
{
	struct set_arg *sa = arg;
	struct p11m_attrs tmp = o->a;

	o->a = *sa->na;
	*sa->na = tmp;
}

CK_RV
p11m_set_attrs(struct p11m_session *s, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	struct p11m_slot *sl = s->slot;
	struct p11m_attrs na = { 0 };
	struct set_arg sa = { &na };
	struct p11m_obj *o;
	CK_RV rv;

	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	if ((o = p11m_obj_lookup(sl, s, h)) == NULL) {
		rv = CKR_OBJECT_HANDLE_INVALID;
		goto out;
	}
	if (o->vendor != P11M_VOBJ_NONE) {
		rv = CKR_ACTION_PROHIBITED;
		goto out;
	}
	if ((rv = p11m_attr_apply(P11M_AOP_SET, o->cls, o->kt, tmpl, n, &o->a,
	    session_is_so(s), &na)) != CKR_OK) {
		goto out;
	}
	if (o->token && !p11m_session_rw(s)) {
		rv = CKR_SESSION_READ_ONLY;
		goto out;
	}
	p11m_objset_reindex(sl, o, swap_attrs, &sa);
	if (o->token) {
		rv = p11m_obj_store(sl, o);
		if (rv != CKR_OK) {
			/* Keep the cache equal to the chip. */
			p11m_objset_reindex(sl, o, swap_attrs, &sa);
			goto out;
		}
	}
out:
	p11m_attrs_free(&na);
	p11m_session_unlock_slot(s);
	return rv;
}

/* ---- C_FindObjects ---- */

struct found_arg {
	struct p11m_op	*op;
	size_t		 cap;
};

/* Append a match to the op's result list (p11m_objset_match callback). */
static CK_RV
found_add(struct p11m_obj *o, void *arg)
{
	struct found_arg *fa = arg;
	struct p11m_op *op = fa->op;

	if (op->nfound == fa->cap) {
		size_t nc = fa->cap == 0 ? 16 : fa->cap * 2;
		CK_OBJECT_HANDLE *v = realloc(op->found, nc * sizeof(*v));

		if (v == NULL) {
			return CKR_HOST_MEMORY;
		}
		op->found = v;
		fa->cap = nc;
	}
	op->found[op->nfound++] = o->h;
	return CKR_OK;
}

CK_RV
p11m_find_init(struct p11m_session *s, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	struct p11m_op *op = &s->op[P11M_OP_FIND];
	struct p11m_slot *sl = s->slot;
	struct found_arg fa;
	size_t i;
	CK_RV rv;

	if (op->active) {
		return CKR_OPERATION_ACTIVE;
	}
	for (i = 0; i < n; i++) {
		if (tmpl[i].pValue == NULL && tmpl[i].ulValueLen != 0) {
			return CKR_ATTRIBUTE_VALUE_INVALID;
		}
	}
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	if ((rv = p11m_slot_check(sl)) != CKR_OK ||
	    (rv = p11m_objset_load(sl)) != CKR_OK ||
	    (rv = p11m_objset_sync(sl)) != CKR_OK) {
		goto out;
	}
	op->nfound = op->next = 0;
	fa.op = op;
	fa.cap = 0;
	if ((rv = p11m_objset_match(sl, tmpl, n, found_add, &fa)) != CKR_OK) {
		goto out;
	}
	op->active = true;
out:
	if (rv != CKR_OK) {
		p11m_op_end(op);
	}
	p11m_session_unlock_slot(s);
	return rv;
}

CK_RV
p11m_find(struct p11m_session *s, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
    CK_ULONG_PTR ret_n)
{
	struct p11m_op *op = &s->op[P11M_OP_FIND];
	CK_ULONG k = 0;

	if (!op->active) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	while (k < max && op->next < op->nfound) {
		out[k++] = op->found[op->next++];
	}
	*ret_n = k;
	return CKR_OK;
}

CK_RV
p11m_find_final(struct p11m_session *s)
{
	struct p11m_op *op = &s->op[P11M_OP_FIND];

	if (!op->active) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	p11m_op_end(op);
	return CKR_OK;
}
