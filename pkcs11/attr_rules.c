/*
 * The attribute rules of PKCS#11 v2.40 (base spec §4, tables 10-36), as
 * tables whose flags are named after the spec's footnotes, and the one
 * routine that enforces them for C_CreateObject, C_GenerateKey(Pair),
 * C_DeriveKey, C_SetAttributeValue and C_CopyObject.
 *
 * Footnotes of v2.40 table 10:
 *  1 MUST be specified when object is created with C_CreateObject.
 *  2 MUST not be specified when object is created with C_CreateObject.
 *  3 MUST be specified when object is generated with C_GenerateKey(Pair).
 *  4 MUST not be specified when object is generated.
 *  7 Cannot be revealed if CKA_SENSITIVE is CK_TRUE or CKA_EXTRACTABLE is
 *    CK_FALSE.
 *  8 May be modified after object is created (C_SetAttributeValue, or
 *    during C_CopyObject).
 *  9 Default value is token-specific (the AR_DEF_* flags are ours).
 * 10 Can only be set to CK_TRUE by the SO user.
 * 11 Cannot be changed once set to CK_TRUE.
 * 12 Cannot be changed once set to CK_FALSE.
 */
#include <string.h>

#include "p11m.h"

enum {
	AR_MUST_ON_CREATE	= 1 << 0,	/* footnote 1 */
	AR_NOT_ON_CREATE	= 1 << 1,	/* footnote 2 */
	AR_MUST_ON_GENERATE	= 1 << 2,	/* footnote 3 */
	AR_NOT_ON_GENERATE	= 1 << 3,	/* footnote 4 */
	AR_GUARDED		= 1 << 6,	/* footnote 7 */
	AR_MODIFIABLE		= 1 << 7,	/* footnote 8 */
	AR_SO_TRUE		= 1 << 9,	/* footnote 10 */
	AR_STICKY_TRUE		= 1 << 10,	/* footnote 11 */
	AR_STICKY_FALSE		= 1 << 11,	/* footnote 12 */
	/* mintline policy (footnote 9 defaults, and what the chip can do) */
	AR_DEF_TRUE		= 1 << 16,	/* absent: CK_TRUE */
	AR_DEF_FALSE		= 1 << 17,	/* absent: CK_FALSE */
	AR_DEF_EMPTY		= 1 << 18,	/* absent: empty value */
	AR_DEF_ZERO		= 1 << 19,	/* absent: (CK_ULONG)0 */
	AR_ONLY_TRUE		= 1 << 20,	/* chip keys: CK_FALSE refused */
	AR_ONLY_FALSE		= 1 << 21,	/* chip keys: CK_TRUE refused */
};

struct attr_rule {
	CK_ATTRIBUTE_TYPE	 type;
	unsigned		 flags;
};

#define RULES(name)	static const struct attr_rule name[]

/* Table 10: common to every storage object. */
RULES(storage_rules) = {
	{ CKA_CLASS,		0 },
	{ CKA_TOKEN,		AR_DEF_FALSE },
	{ CKA_PRIVATE,		AR_DEF_FALSE },
	{ CKA_MODIFIABLE,	AR_DEF_TRUE },
	{ CKA_LABEL,		AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_COPYABLE,		AR_DEF_TRUE | AR_STICKY_FALSE },
	{ CKA_DESTROYABLE,	AR_DEF_TRUE },
};

/* Table 22: data objects. */
RULES(data_rules) = {
	{ CKA_APPLICATION,	AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_OBJECT_ID,	AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_VALUE,		AR_MODIFIABLE | AR_DEF_EMPTY },
};

/* Tables 23 and 24: certificates, X.509 public key certificates. */
RULES(x509_rules) = {
	{ CKA_CERTIFICATE_TYPE,	AR_MUST_ON_CREATE },
	{ CKA_TRUSTED,		AR_SO_TRUE | AR_DEF_FALSE },
	{ CKA_CERTIFICATE_CATEGORY, AR_DEF_ZERO },
	{ CKA_CHECK_VALUE,	0 },
	{ CKA_START_DATE,	AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_END_DATE,		AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_PUBLIC_KEY_INFO,	0 },
	/* footnote 1 for SUBJECT is met by deriving it from CKA_VALUE */
	{ CKA_SUBJECT,		AR_DEF_EMPTY },
	{ CKA_ID,		AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_ISSUER,		AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_SERIAL_NUMBER,	AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_VALUE,		AR_MUST_ON_CREATE },
	{ CKA_URL,		0 },
	{ CKA_HASH_OF_SUBJECT_PUBLIC_KEY, 0 },
	{ CKA_HASH_OF_ISSUER_PUBLIC_KEY, 0 },
	{ CKA_JAVA_MIDP_SECURITY_DOMAIN, AR_DEF_ZERO },
	{ CKA_NAME_HASH_ALGORITHM, 0 },
};

/* Table 25: common to every key. */
RULES(key_rules) = {
	{ CKA_KEY_TYPE,		AR_MUST_ON_CREATE },
	{ CKA_ID,		AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_START_DATE,	AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_END_DATE,		AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_DERIVE,		AR_MODIFIABLE | AR_DEF_FALSE },
	{ CKA_LOCAL,		AR_NOT_ON_CREATE | AR_NOT_ON_GENERATE },
	{ CKA_KEY_GEN_MECHANISM, AR_NOT_ON_CREATE | AR_NOT_ON_GENERATE },
};

/* Table 28: public keys. */
RULES(public_rules) = {
	{ CKA_SUBJECT,		AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_ENCRYPT,		AR_MODIFIABLE | AR_DEF_FALSE },
	{ CKA_VERIFY,		AR_MODIFIABLE | AR_DEF_TRUE },
	{ CKA_VERIFY_RECOVER,	AR_MODIFIABLE | AR_DEF_FALSE },
	{ CKA_WRAP,		AR_MODIFIABLE | AR_DEF_FALSE },
	{ CKA_TRUSTED,		AR_SO_TRUE | AR_DEF_FALSE },
};

/* Table 54 (curves): EC public keys. */
RULES(ec_public_rules) = {
	{ CKA_EC_PARAMS,	AR_MUST_ON_CREATE | AR_MUST_ON_GENERATE },
	{ CKA_EC_POINT,		AR_MUST_ON_CREATE | AR_NOT_ON_GENERATE },
};

/*
 * Table 31: private keys.  Every private key lives in a chip (ID-14), so
 * CKA_SENSITIVE is always CK_TRUE and CKA_EXTRACTABLE always CK_FALSE.
 */
RULES(private_rules) = {
	{ CKA_PRIVATE,		AR_DEF_TRUE },
	{ CKA_SUBJECT,		AR_MODIFIABLE | AR_DEF_EMPTY },
	{ CKA_SENSITIVE,	AR_MODIFIABLE | AR_STICKY_TRUE | AR_ONLY_TRUE |
				AR_DEF_TRUE },
	{ CKA_DECRYPT,		AR_MODIFIABLE | AR_DEF_FALSE },
	{ CKA_SIGN,		AR_MODIFIABLE | AR_DEF_TRUE },
	{ CKA_SIGN_RECOVER,	AR_MODIFIABLE | AR_DEF_FALSE },
	{ CKA_UNWRAP,		AR_MODIFIABLE | AR_DEF_FALSE },
	{ CKA_EXTRACTABLE,	AR_MODIFIABLE | AR_STICKY_FALSE |
				AR_ONLY_FALSE | AR_DEF_FALSE },
	{ CKA_ALWAYS_SENSITIVE,	AR_NOT_ON_CREATE | AR_NOT_ON_GENERATE },
	{ CKA_NEVER_EXTRACTABLE, AR_NOT_ON_CREATE | AR_NOT_ON_GENERATE },
	{ CKA_WRAP_WITH_TRUSTED, AR_STICKY_TRUE | AR_DEF_FALSE },
	{ CKA_ALWAYS_AUTHENTICATE, AR_ONLY_FALSE | AR_DEF_FALSE },
	{ CKA_PUBLIC_KEY_INFO,	0 },
};

/*
 * EC private keys.  CKA_EC_PARAMS is footnote 4 in the spec but clients
 * (libp11, p11tool) repeat it in the private template; we accept it when
 * it names P-256.  CKA_VALUE has a row only so that reading it answers
 * CKR_ATTRIBUTE_SENSITIVE: the value is never present.  CKA_EC_POINT on
 * the private key is a mintline convenience (libp11 looks for it).
 */
RULES(ec_private_rules) = {
	{ CKA_EC_PARAMS,	AR_MUST_ON_CREATE },
	{ CKA_VALUE,		AR_MUST_ON_CREATE | AR_NOT_ON_GENERATE |
				AR_GUARDED },
	{ CKA_EC_POINT,		AR_NOT_ON_CREATE | AR_NOT_ON_GENERATE },
};

/* Table 36: secret keys (module-held or chip-volatile; never on the chip
 * store). */
RULES(secret_rules) = {
	{ CKA_PRIVATE,		AR_DEF_TRUE },
	{ CKA_SENSITIVE,	AR_MODIFIABLE | AR_STICKY_TRUE | AR_DEF_FALSE },
	{ CKA_ENCRYPT,		AR_MODIFIABLE | AR_DEF_TRUE },
	{ CKA_DECRYPT,		AR_MODIFIABLE | AR_DEF_TRUE },
	{ CKA_SIGN,		AR_MODIFIABLE | AR_DEF_FALSE },
	{ CKA_VERIFY,		AR_MODIFIABLE | AR_DEF_FALSE },
	{ CKA_WRAP,		AR_MODIFIABLE | AR_DEF_FALSE },
	{ CKA_UNWRAP,		AR_MODIFIABLE | AR_DEF_FALSE },
	{ CKA_EXTRACTABLE,	AR_MODIFIABLE | AR_STICKY_FALSE | AR_DEF_TRUE },
	{ CKA_ALWAYS_SENSITIVE,	AR_NOT_ON_CREATE | AR_NOT_ON_GENERATE },
	{ CKA_NEVER_EXTRACTABLE, AR_NOT_ON_CREATE | AR_NOT_ON_GENERATE },
	{ CKA_CHECK_VALUE,	0 },
	{ CKA_WRAP_WITH_TRUSTED, AR_STICKY_TRUE | AR_DEF_FALSE },
	{ CKA_TRUSTED,		AR_SO_TRUE | AR_DEF_FALSE },
	{ CKA_VALUE,		AR_MUST_ON_CREATE | AR_NOT_ON_GENERATE |
				AR_GUARDED },
	/* AES: footnotes 2, 3; optional on generate here (the chip's keys
	 * are AES-256 only) and on derive (defaults to the secret size) */
	{ CKA_VALUE_LEN,	AR_NOT_ON_CREATE },
};

#define MAX_TABLES	4

struct rule_table {
	const struct attr_rule	*rows;
	size_t			 n;
};

struct rule_set {
	struct rule_table	 t[MAX_TABLES];	/* most specific first */
};

#define T(name)	{ name, ML_NELEM(name) }

static const struct rule_set data_set = { { T(data_rules),
	T(storage_rules) } };
static const struct rule_set x509_set = { { T(x509_rules),
	T(storage_rules) } };
static const struct rule_set ec_pub_set = { { T(ec_public_rules),
	T(public_rules), T(key_rules), T(storage_rules) } };
static const struct rule_set ec_priv_set = { { T(ec_private_rules),
	T(private_rules), T(key_rules), T(storage_rules) } };
static const struct rule_set secret_set = { { T(secret_rules),
	T(key_rules), T(storage_rules) } };

/* The rule set for a class and key type, or NULL if we do not serve it. */
static const struct rule_set *
rule_set_for(CK_OBJECT_CLASS cls, CK_KEY_TYPE kt)
{
	switch (cls) {
	case CKO_DATA:
		return &data_set;
	case CKO_CERTIFICATE:
		return &x509_set;
	case CKO_PUBLIC_KEY:
		return kt == CKK_EC ? &ec_pub_set : NULL;
	case CKO_PRIVATE_KEY:
		return kt == CKK_EC ? &ec_priv_set : NULL;
	case CKO_SECRET_KEY:
		return (kt == CKK_AES || kt == CKK_GENERIC_SECRET) ?
		    &secret_set : NULL;
	default:
		return NULL;
	}
}

/* The first (most specific) rule for type, or NULL: not an attribute of
 * this kind of object. */
static const struct attr_rule *
rule_find(const struct rule_set *rs, CK_ATTRIBUTE_TYPE type)
{
	size_t i, j;

	for (i = 0; i < MAX_TABLES && rs->t[i].rows != NULL; i++) {
		for (j = 0; j < rs->t[i].n; j++) {
			if (rs->t[i].rows[j].type == type) {
				return &rs->t[i].rows[j];
			}
		}
	}
	return NULL;
}

bool
p11m_attr_persistent(CK_ATTRIBUTE_TYPE type)
{
	/*
	 * Everything a token object shows is kept in its blob (CKA_EC_POINT
	 * too, although the chip's own point wins when it has one).  Secret
	 * key values never reach a chip store: secret keys are session
	 * objects.  Only the module's vendor-defined attributes are not.
	 */
	return (type & CKA_VENDOR_DEFINED) == 0;
}

/* Check the encoding of one template value against its kind. */
static CK_RV
value_check(const CK_ATTRIBUTE *t)
{
	if (t->pValue == NULL && t->ulValueLen != 0) {
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	if (t->ulValueLen > P11M_MAX_ATTR_LEN) {
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	switch (p11m_attr_kind(t->type)) {
	case P11M_AK_BOOL:
		if (t->ulValueLen != sizeof(CK_BBOOL) ||
		    *(const CK_BBOOL *)t->pValue > CK_TRUE) {
			return CKR_ATTRIBUTE_VALUE_INVALID;
		}
		break;
	case P11M_AK_ULONG:
		if (t->ulValueLen != sizeof(CK_ULONG)) {
			return CKR_ATTRIBUTE_VALUE_INVALID;
		}
		break;
	case P11M_AK_DATE:
		if (t->ulValueLen != 0 && t->ulValueLen != sizeof(CK_DATE)) {
			return CKR_ATTRIBUTE_VALUE_INVALID;
		}
		break;
	default:
		break;
	}
	return CKR_OK;
}

static bool
tmpl_bool(const CK_ATTRIBUTE *t)
{
	return *(const CK_BBOOL *)t->pValue != CK_FALSE;
}

static bool
same_value(const CK_ATTRIBUTE *a, const CK_ATTRIBUTE *b)
{
	return a->ulValueLen == b->ulValueLen && (a->ulValueLen == 0 ||
	    memcmp(a->pValue, b->pValue, a->ulValueLen) == 0);
}

const CK_ATTRIBUTE *
p11m_tmpl_find(const CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
	CK_ULONG i;

	for (i = 0; i < n; i++) {
		if (tmpl[i].type == type) {
			return &tmpl[i];
		}
	}
	return NULL;
}

CK_RV
p11m_tmpl_class(const CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_CLASS def_cls,
    CK_KEY_TYPE def_kt, CK_OBJECT_CLASS *ret_cls, CK_KEY_TYPE *ret_kt)
{
	CK_OBJECT_CLASS cls = def_cls;
	CK_KEY_TYPE kt = def_kt;
	CK_ULONG i;

	for (i = 0; i < n; i++) {
		if (tmpl[i].type != CKA_CLASS && tmpl[i].type != CKA_KEY_TYPE) {
			continue;
		}
		if (tmpl[i].pValue == NULL ||
		    tmpl[i].ulValueLen != sizeof(CK_ULONG)) {
			return CKR_ATTRIBUTE_VALUE_INVALID;
		}
		if (tmpl[i].type == CKA_CLASS) {
			cls = *(const CK_ULONG *)tmpl[i].pValue;
		} else {
			kt = *(const CK_ULONG *)tmpl[i].pValue;
		}
	}
	if (cls == (CK_ULONG)-1) {
		return CKR_TEMPLATE_INCOMPLETE;
	}
	if ((cls == CKO_PUBLIC_KEY || cls == CKO_PRIVATE_KEY ||
	    cls == CKO_SECRET_KEY) && kt == (CK_ULONG)-1) {
		return CKR_TEMPLATE_INCOMPLETE;
	}
	*ret_cls = cls;
	*ret_kt = kt;
	return CKR_OK;
}

/* Per-attribute checks that depend on the operation. */
static CK_RV
op_check(enum p11m_aop op, const struct attr_rule *r, const CK_ATTRIBUTE *t,
    const struct p11m_attrs *cur, bool is_so)
{
	bool is_bool = p11m_attr_kind(t->type) == P11M_AK_BOOL;
	bool v = is_bool && tmpl_bool(t);

	switch (op) {
	case P11M_AOP_CREATE:
		if (r->flags & AR_NOT_ON_CREATE) {
			return CKR_ATTRIBUTE_READ_ONLY;
		}
		break;
	case P11M_AOP_GENERATE:
	case P11M_AOP_DERIVE:
		if (r->flags & AR_NOT_ON_GENERATE) {
			return CKR_ATTRIBUTE_READ_ONLY;
		}
		break;
	case P11M_AOP_SET:
	case P11M_AOP_COPY:
		if (!(r->flags & AR_MODIFIABLE) && !(op == P11M_AOP_COPY &&
		    (t->type == CKA_TOKEN || t->type == CKA_PRIVATE ||
		    t->type == CKA_MODIFIABLE))) {
			/* Re-stating the current value is not a change. */
			const struct p11m_attr *c = p11m_attrs_get(cur, t->type);

			if (c == NULL || c->len != t->ulValueLen ||
			    (c->len > 0 && memcmp(c->val, t->pValue,
			    c->len) != 0)) {
				return CKR_ATTRIBUTE_READ_ONLY;
			}
		}
		if (is_bool && (r->flags & AR_STICKY_TRUE) && !v &&
		    p11m_attrs_bool(cur, t->type, false)) {
			return CKR_ATTRIBUTE_READ_ONLY;
		}
		if (is_bool && (r->flags & AR_STICKY_FALSE) && v &&
		    !p11m_attrs_bool(cur, t->type, true)) {
			return CKR_ATTRIBUTE_READ_ONLY;
		}
		break;
	}
	if (is_bool && (r->flags & AR_SO_TRUE) && v && !is_so) {
		return CKR_ATTRIBUTE_READ_ONLY;
	}
	if (is_bool && (r->flags & AR_ONLY_TRUE) && !v) {
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	if (is_bool && (r->flags & AR_ONLY_FALSE) && v) {
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	return CKR_OK;
}

static CK_RV
add_defaults(const struct rule_set *rs, struct p11m_attrs *a)
{
	static const uint8_t empty[1];
	const struct attr_rule *r;
	size_t i, j;
	CK_RV rv;

	for (i = 0; i < MAX_TABLES && rs->t[i].rows != NULL; i++) {
		for (j = 0; j < rs->t[i].n; j++) {
			r = &rs->t[i].rows[j];
			if (p11m_attrs_get(a, r->type) != NULL ||
			    rule_find(rs, r->type) != r) {
				continue;
			}
			rv = CKR_OK;
			if (r->flags & AR_DEF_TRUE) {
				rv = p11m_attrs_set_bool(a, r->type, true);
			} else if (r->flags & AR_DEF_FALSE) {
				rv = p11m_attrs_set_bool(a, r->type, false);
			} else if (r->flags & AR_DEF_EMPTY) {
				rv = p11m_attrs_set(a, r->type, empty, 0);
			} else if (r->flags & AR_DEF_ZERO) {
				rv = p11m_attrs_set_ulong(a, r->type, 0);
			}
			if (rv != CKR_OK) {
				return rv;
			}
		}
	}
	return CKR_OK;
}

/*
 * CKR_TEMPLATE_INCOMPLETE if the template lacks an attribute whose rule
 * carries the must flag (CKA_KEY_TYPE and CKA_CERTIFICATE_TYPE excepted:
 * the class choice implies them); else CKR_OK.
 */
static CK_RV
need_required(const struct rule_set *rs, unsigned must,
    const CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	const struct attr_rule *r;
	size_t i, j;

	for (i = 0; i < MAX_TABLES && rs->t[i].rows != NULL; i++) {
		for (j = 0; j < rs->t[i].n; j++) {
			r = &rs->t[i].rows[j];
			if (!(r->flags & must) || rule_find(rs, r->type) != r) {
				continue;
			}
			if (r->type == CKA_KEY_TYPE ||
			    r->type == CKA_CERTIFICATE_TYPE) {
				continue;
			}
			if (p11m_tmpl_find(tmpl, n, r->type) == NULL) {
				return CKR_TEMPLATE_INCOMPLETE;
			}
		}
	}
	return CKR_OK;
}

CK_RV
p11m_attr_apply(enum p11m_aop op, CK_OBJECT_CLASS cls, CK_KEY_TYPE kt,
    const CK_ATTRIBUTE *tmpl, CK_ULONG n, const struct p11m_attrs *cur,
    bool is_so, struct p11m_attrs *ret)
{
	const struct rule_set *rs = rule_set_for(cls, kt);
	struct p11m_attrs a = { 0 };
	const struct attr_rule *r;
	CK_ULONG i, j;
	CK_RV rv = CKR_OK;

	/*
	 * No rule table: the class or key type is one we do not support.  A
	 * created object names it in its template, so that value is invalid
	 * (v2.40 §5.7); other calls got it from a mechanism or an object.
	 */
	if (rs == NULL) {
		return op != P11M_AOP_CREATE && (cls == CKO_PUBLIC_KEY ||
		    cls == CKO_PRIVATE_KEY || cls == CKO_SECRET_KEY) ?
		    CKR_KEY_TYPE_INCONSISTENT : CKR_ATTRIBUTE_VALUE_INVALID;
	}
	if (n > 0 && tmpl == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	if ((op == P11M_AOP_SET || op == P11M_AOP_COPY) && cur == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	if (op == P11M_AOP_SET && !p11m_attrs_bool(cur, CKA_MODIFIABLE, true)) {
		return CKR_ACTION_PROHIBITED;
	}
	if (op == P11M_AOP_COPY && !p11m_attrs_bool(cur, CKA_COPYABLE, true)) {
		return CKR_ACTION_PROHIBITED;
	}

	/* Pass 1: every entry is known, well-formed and allowed. */
	for (i = 0; i < n; i++) {
		const CK_ATTRIBUTE *t = &tmpl[i];

		if ((r = rule_find(rs, t->type)) == NULL) {
			return CKR_ATTRIBUTE_TYPE_INVALID;
		}
		if ((rv = value_check(t)) != CKR_OK) {
			return rv;
		}
		/* A read-only attribute is read-only before it is wrong. */
		if ((rv = op_check(op, r, t, cur, is_so)) != CKR_OK) {
			return rv;
		}
		for (j = 0; j < i; j++) {
			if (tmpl[j].type == t->type && !same_value(&tmpl[j], t)) {
				return CKR_TEMPLATE_INCONSISTENT;
			}
		}
		if (t->type == CKA_CLASS &&
		    *(const CK_ULONG *)t->pValue != cls) {
			return CKR_TEMPLATE_INCONSISTENT;
		}
		if (t->type == CKA_KEY_TYPE &&
		    *(const CK_ULONG *)t->pValue != kt) {
			return CKR_TEMPLATE_INCONSISTENT;
		}
		if (t->type == CKA_CERTIFICATE_TYPE &&
		    *(const CK_ULONG *)t->pValue != CKC_X_509) {
			return CKR_ATTRIBUTE_VALUE_INVALID;
		}
	}

	/* Pass 2: required attributes are present. */
	if (op == P11M_AOP_CREATE &&
	    (rv = need_required(rs, AR_MUST_ON_CREATE, tmpl, n)) != CKR_OK) {
		return rv;
	}
	if (op == P11M_AOP_GENERATE &&
	    (rv = need_required(rs, AR_MUST_ON_GENERATE, tmpl, n)) != CKR_OK) {
		return rv;
	}

	/* Pass 3: build the result. */
	if (op == P11M_AOP_SET || op == P11M_AOP_COPY) {
		if ((rv = p11m_attrs_copy(cur, &a)) != CKR_OK) {
			goto out;
		}
	} else {
		if ((rv = p11m_attrs_set_ulong(&a, CKA_CLASS, cls)) != CKR_OK) {
			goto out;
		}
		if (cls == CKO_PUBLIC_KEY || cls == CKO_PRIVATE_KEY ||
		    cls == CKO_SECRET_KEY) {
			rv = p11m_attrs_set_ulong(&a, CKA_KEY_TYPE, kt);
			if (rv != CKR_OK) {
				goto out;
			}
		}
		if (cls == CKO_CERTIFICATE) {
			rv = p11m_attrs_set_ulong(&a, CKA_CERTIFICATE_TYPE,
			    CKC_X_509);
			if (rv != CKR_OK) {
				goto out;
			}
		}
	}
	for (i = 0; i < n; i++) {
		rv = p11m_attrs_set(&a, tmpl[i].type, tmpl[i].pValue,
		    tmpl[i].ulValueLen);
		if (rv != CKR_OK) {
			goto out;
		}
	}
	if (op != P11M_AOP_SET && op != P11M_AOP_COPY) {
		if ((rv = add_defaults(rs, &a)) != CKR_OK) {
			goto out;
		}
	}
	*ret = a;
	a = (struct p11m_attrs){ 0 };
out:
	p11m_attrs_free(&a);
	return rv;
}

CK_RV
p11m_attr_get(CK_OBJECT_CLASS cls, CK_KEY_TYPE kt, const struct p11m_attrs *a,
    CK_ATTRIBUTE *t)
{
	const struct rule_set *rs = rule_set_for(cls, kt);
	const struct attr_rule *r = rs != NULL ? rule_find(rs, t->type) : NULL;
	const struct p11m_attr *at;

	if (r != NULL && (r->flags & AR_GUARDED) &&
	    (p11m_attrs_bool(a, CKA_SENSITIVE, false) ||
	    !p11m_attrs_bool(a, CKA_EXTRACTABLE, true) ||
	    cls == CKO_PRIVATE_KEY)) {
		t->ulValueLen = CK_UNAVAILABLE_INFORMATION;
		return CKR_ATTRIBUTE_SENSITIVE;
	}
	if ((at = p11m_attrs_get(a, t->type)) == NULL) {
		t->ulValueLen = CK_UNAVAILABLE_INFORMATION;
		return CKR_ATTRIBUTE_TYPE_INVALID;
	}
	if (t->pValue == NULL) {
		t->ulValueLen = at->len;
		return CKR_OK;
	}
	if (t->ulValueLen < at->len) {
		t->ulValueLen = CK_UNAVAILABLE_INFORMATION;
		return CKR_BUFFER_TOO_SMALL;
	}
	if (at->len > 0) {
		memcpy(t->pValue, at->val, at->len);
	}
	t->ulValueLen = at->len;
	return CKR_OK;
}
