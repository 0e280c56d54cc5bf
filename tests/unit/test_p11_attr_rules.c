/*
 * Unit tests for pkcs11/attr_rules.c: the one table-driven checker of
 * C_CreateObject, C_GenerateKey(Pair), C_DeriveKey, C_SetAttributeValue
 * and C_CopyObject.  Every vector names the exact CKR the spec asks for.
 */
#include <stdbool.h>
#include <string.h>

#include <check.h>

#include "p11m.h"

static CK_OBJECT_CLASS c_data = CKO_DATA, c_cert = CKO_CERTIFICATE,
    c_pub = CKO_PUBLIC_KEY, c_priv = CKO_PRIVATE_KEY, c_sec = CKO_SECRET_KEY;
static CK_KEY_TYPE k_ec = CKK_EC, k_aes = CKK_AES, k_rsa = CKK_RSA;
static CK_CERTIFICATE_TYPE ct_x509 = CKC_X_509, ct_wtls = CKC_WTLS;
static CK_BBOOL t = CK_TRUE, f = CK_FALSE, two = 2;
static CK_ULONG len32 = 32;
static CK_BYTE oid[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
    0x01, 0x07 };
static CK_BYTE point[67] = { 0x04, 0x41, 0x04 };

#define A(type, ptr, n)	{ (type), (void *)(ptr), (n) }
#define END		{ (CK_ATTRIBUTE_TYPE)-1, NULL, 0 }
#define MAXT		8

static const struct vec {
	const char		*name;
	enum p11m_aop		 op;
	CK_OBJECT_CLASS		 cls;
	CK_KEY_TYPE		 kt;
	CK_ATTRIBUTE		 tmpl[MAXT];
	CK_RV			 want;
} vecs[] = {
	/* C_CreateObject */
	{ "data-ok", P11M_AOP_CREATE, CKO_DATA, 0,
	  { A(CKA_CLASS, &c_data, sizeof(c_data)), A(CKA_LABEL, "l", 1),
	    A(CKA_VALUE, "v", 1), END }, CKR_OK },
	{ "data-empty", P11M_AOP_CREATE, CKO_DATA, 0, { END }, CKR_OK },
	{ "data-unknown-attr", P11M_AOP_CREATE, CKO_DATA, 0,
	  { A(CKA_EC_POINT, point, sizeof(point)), END },
	  CKR_ATTRIBUTE_TYPE_INVALID },
	{ "data-class-mismatch", P11M_AOP_CREATE, CKO_DATA, 0,
	  { A(CKA_CLASS, &c_cert, sizeof(c_cert)), END },
	  CKR_TEMPLATE_INCONSISTENT },
	{ "data-dup-differs", P11M_AOP_CREATE, CKO_DATA, 0,
	  { A(CKA_LABEL, "a", 1), A(CKA_LABEL, "b", 1), END },
	  CKR_TEMPLATE_INCONSISTENT },
	{ "data-dup-same", P11M_AOP_CREATE, CKO_DATA, 0,
	  { A(CKA_LABEL, "a", 1), A(CKA_LABEL, "a", 1), END }, CKR_OK },
	{ "bool-wrong-size", P11M_AOP_CREATE, CKO_DATA, 0,
	  { A(CKA_TOKEN, &len32, sizeof(len32)), END },
	  CKR_ATTRIBUTE_VALUE_INVALID },
	{ "bool-not-0-1", P11M_AOP_CREATE, CKO_DATA, 0,
	  { A(CKA_TOKEN, &two, 1), END }, CKR_ATTRIBUTE_VALUE_INVALID },
	{ "ulong-wrong-size", P11M_AOP_CREATE, CKO_DATA, 0,
	  { A(CKA_CLASS, &t, 1), END }, CKR_ATTRIBUTE_VALUE_INVALID },
	{ "null-value", P11M_AOP_CREATE, CKO_DATA, 0,
	  { A(CKA_LABEL, NULL, 3), END }, CKR_ATTRIBUTE_VALUE_INVALID },
	{ "cert-ok", P11M_AOP_CREATE, CKO_CERTIFICATE, 0,
	  { A(CKA_CERTIFICATE_TYPE, &ct_x509, sizeof(ct_x509)),
	    A(CKA_VALUE, "der", 3), END }, CKR_OK },
	{ "cert-no-value", P11M_AOP_CREATE, CKO_CERTIFICATE, 0,
	  { A(CKA_CERTIFICATE_TYPE, &ct_x509, sizeof(ct_x509)), END },
	  CKR_TEMPLATE_INCOMPLETE },
	{ "cert-wtls", P11M_AOP_CREATE, CKO_CERTIFICATE, 0,
	  { A(CKA_CERTIFICATE_TYPE, &ct_wtls, sizeof(ct_wtls)),
	    A(CKA_VALUE, "der", 3), END }, CKR_ATTRIBUTE_VALUE_INVALID },
	{ "cert-trusted-not-so", P11M_AOP_CREATE, CKO_CERTIFICATE, 0,
	  { A(CKA_VALUE, "der", 3), A(CKA_TRUSTED, &t, 1), END },
	  CKR_ATTRIBUTE_READ_ONLY },
	{ "pub-ok", P11M_AOP_CREATE, CKO_PUBLIC_KEY, CKK_EC,
	  { A(CKA_EC_PARAMS, oid, sizeof(oid)),
	    A(CKA_EC_POINT, point, sizeof(point)), END }, CKR_OK },
	{ "pub-no-point", P11M_AOP_CREATE, CKO_PUBLIC_KEY, CKK_EC,
	  { A(CKA_EC_PARAMS, oid, sizeof(oid)), END },
	  CKR_TEMPLATE_INCOMPLETE },
	{ "pub-local (footnote 2)", P11M_AOP_CREATE, CKO_PUBLIC_KEY, CKK_EC,
	  { A(CKA_EC_PARAMS, oid, sizeof(oid)),
	    A(CKA_EC_POINT, point, sizeof(point)), A(CKA_LOCAL, &t, 1), END },
	  CKR_ATTRIBUTE_READ_ONLY },
	{ "pub-keytype-mismatch", P11M_AOP_CREATE, CKO_PUBLIC_KEY, CKK_EC,
	  { A(CKA_KEY_TYPE, &k_aes, sizeof(k_aes)), END },
	  CKR_TEMPLATE_INCONSISTENT },
	{ "pub-rsa", P11M_AOP_CREATE, CKO_PUBLIC_KEY, CKK_RSA, { END },
	  CKR_ATTRIBUTE_VALUE_INVALID },
	{ "pub-rsa-generated", P11M_AOP_GENERATE, CKO_PUBLIC_KEY, CKK_RSA,
	  { END }, CKR_KEY_TYPE_INCONSISTENT },
	{ "priv-always-sensitive (footnote 2)", P11M_AOP_CREATE,
	  CKO_PRIVATE_KEY, CKK_EC,
	  { A(CKA_ALWAYS_SENSITIVE, &t, 1), END }, CKR_ATTRIBUTE_READ_ONLY },
	{ "secret-value-len-on-create", P11M_AOP_CREATE, CKO_SECRET_KEY,
	  CKK_AES, { A(CKA_VALUE, "0123456789abcdef", 16),
	    A(CKA_VALUE_LEN, &len32, sizeof(len32)), END },
	  CKR_ATTRIBUTE_READ_ONLY },
	{ "secret-no-value", P11M_AOP_CREATE, CKO_SECRET_KEY, CKK_AES,
	  { END }, CKR_TEMPLATE_INCOMPLETE },
	{ "unknown-class", P11M_AOP_CREATE, CKO_DOMAIN_PARAMETERS, 0,
	  { END }, CKR_ATTRIBUTE_VALUE_INVALID },
	/* C_GenerateKeyPair */
	{ "gen-pub-ok", P11M_AOP_GENERATE, CKO_PUBLIC_KEY, CKK_EC,
	  { A(CKA_EC_PARAMS, oid, sizeof(oid)), A(CKA_TOKEN, &t, 1), END },
	  CKR_OK },
	{ "gen-pub-no-params (footnote 3)", P11M_AOP_GENERATE,
	  CKO_PUBLIC_KEY, CKK_EC, { A(CKA_TOKEN, &t, 1), END },
	  CKR_TEMPLATE_INCOMPLETE },
	{ "gen-pub-point (footnote 4)", P11M_AOP_GENERATE, CKO_PUBLIC_KEY,
	  CKK_EC, { A(CKA_EC_PARAMS, oid, sizeof(oid)),
	    A(CKA_EC_POINT, point, sizeof(point)), END },
	  CKR_ATTRIBUTE_READ_ONLY },
	{ "gen-priv-ok", P11M_AOP_GENERATE, CKO_PRIVATE_KEY, CKK_EC,
	  { A(CKA_SIGN, &t, 1), A(CKA_SENSITIVE, &t, 1), END }, CKR_OK },
	{ "gen-priv-value (footnote 4)", P11M_AOP_GENERATE,
	  CKO_PRIVATE_KEY, CKK_EC, { A(CKA_VALUE, "x", 1), END },
	  CKR_ATTRIBUTE_READ_ONLY },
	{ "gen-priv-not-sensitive", P11M_AOP_GENERATE, CKO_PRIVATE_KEY,
	  CKK_EC, { A(CKA_SENSITIVE, &f, 1), END },
	  CKR_ATTRIBUTE_VALUE_INVALID },
	{ "gen-priv-extractable", P11M_AOP_GENERATE, CKO_PRIVATE_KEY, CKK_EC,
	  { A(CKA_EXTRACTABLE, &t, 1), END }, CKR_ATTRIBUTE_VALUE_INVALID },
	{ "gen-priv-keygen-mech (footnote 4)", P11M_AOP_GENERATE,
	  CKO_PRIVATE_KEY, CKK_EC, { A(CKA_KEY_GEN_MECHANISM, &len32,
	    sizeof(len32)), END }, CKR_ATTRIBUTE_READ_ONLY },
	{ "gen-secret-ok", P11M_AOP_GENERATE, CKO_SECRET_KEY, CKK_AES,
	  { A(CKA_VALUE_LEN, &len32, sizeof(len32)), END }, CKR_OK },
	{ "derive-secret-value", P11M_AOP_DERIVE, CKO_SECRET_KEY,
	  CKK_GENERIC_SECRET, { A(CKA_VALUE, "x", 1), END },
	  CKR_ATTRIBUTE_READ_ONLY },
	{ "derive-class-mismatch", P11M_AOP_DERIVE, CKO_SECRET_KEY, CKK_AES,
	  { A(CKA_CLASS, &c_pub, sizeof(c_pub)), END },
	  CKR_TEMPLATE_INCONSISTENT },
};

static CK_ULONG
tmpl_len(const CK_ATTRIBUTE *tmpl)
{
	CK_ULONG n = 0;

	while (n < MAXT && tmpl[n].type != (CK_ATTRIBUTE_TYPE)-1) {
		n++;
	}
	return n;
}

START_TEST(rule_vectors)
{
	const struct vec *v = &vecs[_i];
	struct p11m_attrs out = { 0 };
	CK_RV rv;

	rv = p11m_attr_apply(v->op, v->cls, v->kt, v->tmpl, tmpl_len(v->tmpl),
	    NULL, false, &out);
	ck_assert_msg(rv == v->want, "%s: 0x%lx, want 0x%lx", v->name,
	    (unsigned long)rv, (unsigned long)v->want);
	if (rv != CKR_OK) {
		ck_assert_msg(out.n == 0 && out.v == NULL,
		    "%s: output touched on failure", v->name);
	}
	p11m_attrs_free(&out);
}
END_TEST

/* Defaults (footnote 9) land in the result. */
START_TEST(create_defaults)
{
	CK_ATTRIBUTE tmpl[] = { A(CKA_LABEL, "x", 1) };
	struct p11m_attrs a = { 0 };
	CK_ULONG cls = 0;

	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_GENERATE, CKO_PRIVATE_KEY,
	    CKK_EC, tmpl, 1, NULL, false, &a), CKR_OK);
	ck_assert(p11m_attrs_ulong(&a, CKA_CLASS, &cls) && cls == CKO_PRIVATE_KEY);
	ck_assert(p11m_attrs_bool(&a, CKA_SENSITIVE, false));
	ck_assert(!p11m_attrs_bool(&a, CKA_EXTRACTABLE, true));
	ck_assert(p11m_attrs_bool(&a, CKA_PRIVATE, false));
	ck_assert(p11m_attrs_bool(&a, CKA_SIGN, false));
	ck_assert(!p11m_attrs_bool(&a, CKA_TOKEN, true));
	ck_assert(p11m_attrs_get(&a, CKA_ID) != NULL);
	ck_assert(p11m_attrs_get(&a, CKA_VALUE) == NULL);
	p11m_attrs_free(&a);
}
END_TEST

/* C_SetAttributeValue and C_CopyObject against an existing object. */
START_TEST(set_and_copy)
{
	CK_ATTRIBUTE base[] = { A(CKA_LABEL, "k", 1) };
	CK_ATTRIBUTE label[] = { A(CKA_LABEL, "new", 3) };
	CK_ATTRIBUTE ro[] = { A(CKA_CLASS, &c_priv, sizeof(c_priv)) };
	CK_ATTRIBUTE unsens[] = { A(CKA_SENSITIVE, &f, 1) };
	CK_ATTRIBUTE sens[] = { A(CKA_SENSITIVE, &t, 1) };
	CK_ATTRIBUTE extr[] = { A(CKA_EXTRACTABLE, &t, 1) };
	CK_ATTRIBUTE tok[] = { A(CKA_TOKEN, &t, 1) };
	CK_ATTRIBUTE unmod[] = { A(CKA_MODIFIABLE, &f, 1) };
	CK_ATTRIBUTE nocopy[] = { A(CKA_COPYABLE, &f, 1) };
	CK_ATTRIBUTE copy_true[] = { A(CKA_COPYABLE, &t, 1) };
	struct p11m_attrs key = { 0 }, out = { 0 }, sec = { 0 }, ro_obj = { 0 };

	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_GENERATE, CKO_PRIVATE_KEY,
	    CKK_EC, base, 1, NULL, false, &key), CKR_OK);
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_SET, CKO_PRIVATE_KEY, CKK_EC,
	    label, 1, &key, false, &out), CKR_OK);
	ck_assert_int_eq(p11m_attrs_get(&out, CKA_LABEL)->len, 3);
	p11m_attrs_free(&out);
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_SET, CKO_PRIVATE_KEY, CKK_EC,
	    ro, 1, &key, false, &out), CKR_OK);	/* same value: no change */
	p11m_attrs_free(&out);
	/* footnote 11: CKA_SENSITIVE cannot go back to CK_FALSE */
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_SET, CKO_PRIVATE_KEY, CKK_EC,
	    unsens, 1, &key, false, &out), CKR_ATTRIBUTE_READ_ONLY);
	/* footnote 12: CKA_EXTRACTABLE cannot go back to CK_TRUE */
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_SET, CKO_PRIVATE_KEY, CKK_EC,
	    extr, 1, &key, false, &out), CKR_ATTRIBUTE_READ_ONLY);
	/* CKA_TOKEN: read-only for SET, allowed for COPY */
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_SET, CKO_PRIVATE_KEY, CKK_EC,
	    tok, 1, &key, false, &out), CKR_ATTRIBUTE_READ_ONLY);
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_COPY, CKO_PRIVATE_KEY,
	    CKK_EC, tok, 1, &key, false, &out), CKR_OK);
	p11m_attrs_free(&out);

	/* A secret key: sensitive may become true, never false again. */
	{
		CK_ATTRIBUTE v[] = { A(CKA_VALUE, "0123456789abcdef", 16) };

		ck_assert_int_eq(p11m_attr_apply(P11M_AOP_CREATE,
		    CKO_SECRET_KEY, CKK_AES, v, 1, NULL, false, &sec), CKR_OK);
	}
	ck_assert(!p11m_attrs_bool(&sec, CKA_SENSITIVE, true));
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_SET, CKO_SECRET_KEY, CKK_AES,
	    sens, 1, &sec, false, &out), CKR_OK);
	ck_assert(p11m_attrs_bool(&out, CKA_SENSITIVE, false));
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_SET, CKO_SECRET_KEY, CKK_AES,
	    unsens, 1, &out, false, &ro_obj), CKR_ATTRIBUTE_READ_ONLY);
	p11m_attrs_free(&out);

	/* CKA_MODIFIABLE false: every SET is prohibited. */
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_COPY, CKO_PRIVATE_KEY,
	    CKK_EC, unmod, 1, &key, false, &ro_obj), CKR_OK);
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_SET, CKO_PRIVATE_KEY, CKK_EC,
	    label, 1, &ro_obj, false, &out), CKR_ACTION_PROHIBITED);
	p11m_attrs_free(&ro_obj);
	/* CKA_COPYABLE false: COPY prohibited; and it cannot come back. */
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_SET, CKO_PRIVATE_KEY, CKK_EC,
	    nocopy, 1, &key, false, &ro_obj), CKR_ATTRIBUTE_READ_ONLY);
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_COPY, CKO_PRIVATE_KEY,
	    CKK_EC, nocopy, 1, &key, false, &ro_obj), CKR_ATTRIBUTE_READ_ONLY);
	p11m_attrs_set_bool(&key, CKA_COPYABLE, false);
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_COPY, CKO_PRIVATE_KEY,
	    CKK_EC, NULL, 0, &key, false, &out), CKR_ACTION_PROHIBITED);
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_COPY, CKO_PRIVATE_KEY,
	    CKK_EC, copy_true, 1, &key, false, &out), CKR_ACTION_PROHIBITED);
	p11m_attrs_free(&key);
	p11m_attrs_free(&sec);
}
END_TEST

/* C_GetAttributeValue: footnote 7 and the v2.40 §5.7 output rules. */
START_TEST(get_rules)
{
	CK_ATTRIBUTE v[] = { A(CKA_VALUE, "0123456789abcdef", 16) };
	CK_ATTRIBUTE sens[] = { A(CKA_SENSITIVE, &t, 1) };
	struct p11m_attrs a = { 0 }, b = { 0 }, k = { 0 };
	CK_BYTE buf[32];
	CK_ATTRIBUTE q = { CKA_VALUE, NULL, 0 };

	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_CREATE, CKO_SECRET_KEY,
	    CKK_AES, v, 1, NULL, false, &a), CKR_OK);
	ck_assert_int_eq(p11m_attr_get(CKO_SECRET_KEY, CKK_AES, &a, &q),
	    CKR_OK);
	ck_assert_int_eq(q.ulValueLen, 16);
	q.pValue = buf;
	q.ulValueLen = 8;
	ck_assert_int_eq(p11m_attr_get(CKO_SECRET_KEY, CKK_AES, &a, &q),
	    CKR_BUFFER_TOO_SMALL);
	ck_assert(q.ulValueLen == CK_UNAVAILABLE_INFORMATION);
	q.ulValueLen = sizeof(buf);
	ck_assert_int_eq(p11m_attr_get(CKO_SECRET_KEY, CKK_AES, &a, &q),
	    CKR_OK);
	ck_assert_int_eq(q.ulValueLen, 16);
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_SET, CKO_SECRET_KEY, CKK_AES,
	    sens, 1, &a, false, &b), CKR_OK);
	q.ulValueLen = sizeof(buf);
	ck_assert_int_eq(p11m_attr_get(CKO_SECRET_KEY, CKK_AES, &b, &q),
	    CKR_ATTRIBUTE_SENSITIVE);
	ck_assert(q.ulValueLen == CK_UNAVAILABLE_INFORMATION);
	q.type = CKA_MODULUS;
	q.ulValueLen = sizeof(buf);
	ck_assert_int_eq(p11m_attr_get(CKO_SECRET_KEY, CKK_AES, &b, &q),
	    CKR_ATTRIBUTE_TYPE_INVALID);
	ck_assert(q.ulValueLen == CK_UNAVAILABLE_INFORMATION);
	/* A private key's CKA_VALUE: always sensitive, never present. */
	ck_assert_int_eq(p11m_attr_apply(P11M_AOP_GENERATE, CKO_PRIVATE_KEY,
	    CKK_EC, NULL, 0, NULL, false, &k), CKR_OK);
	q.type = CKA_VALUE;
	q.ulValueLen = sizeof(buf);
	ck_assert_int_eq(p11m_attr_get(CKO_PRIVATE_KEY, CKK_EC, &k, &q),
	    CKR_ATTRIBUTE_SENSITIVE);
	p11m_attrs_free(&a);
	p11m_attrs_free(&b);
	p11m_attrs_free(&k);
}
END_TEST

START_TEST(tmpl_class)
{
	CK_ATTRIBUTE none[] = { A(CKA_LABEL, "x", 1) };
	CK_ATTRIBUTE pub[] = { A(CKA_CLASS, &c_pub, sizeof(c_pub)) };
	CK_ATTRIBUTE pubk[] = { A(CKA_CLASS, &c_pub, sizeof(c_pub)),
	    A(CKA_KEY_TYPE, &k_ec, sizeof(k_ec)) };
	CK_ATTRIBUTE bad[] = { A(CKA_CLASS, &t, 1) };
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;

	ck_assert_int_eq(p11m_tmpl_class(none, 1, (CK_ULONG)-1, (CK_ULONG)-1,
	    &cls, &kt), CKR_TEMPLATE_INCOMPLETE);
	ck_assert_int_eq(p11m_tmpl_class(pub, 1, (CK_ULONG)-1, (CK_ULONG)-1,
	    &cls, &kt), CKR_TEMPLATE_INCOMPLETE);
	ck_assert_int_eq(p11m_tmpl_class(pubk, 2, (CK_ULONG)-1, (CK_ULONG)-1,
	    &cls, &kt), CKR_OK);
	ck_assert(cls == CKO_PUBLIC_KEY && kt == CKK_EC);
	ck_assert_int_eq(p11m_tmpl_class(bad, 1, (CK_ULONG)-1, (CK_ULONG)-1,
	    &cls, &kt), CKR_ATTRIBUTE_VALUE_INVALID);
	ck_assert_int_eq(p11m_tmpl_class(none, 1, CKO_SECRET_KEY, CKK_AES,
	    &cls, &kt), CKR_OK);
	ck_assert(cls == CKO_SECRET_KEY && kt == CKK_AES);
	(void)c_sec;
	(void)k_rsa;
}
END_TEST

static Suite *
attr_rules_suite(void)
{
	Suite *s = suite_create("p11_attr_rules");
	TCase *tc = tcase_create("rules");

	tcase_add_loop_test(tc, rule_vectors, 0, (int)ML_NELEM(vecs));
	tcase_add_test(tc, create_defaults);
	tcase_add_test(tc, set_and_copy);
	tcase_add_test(tc, get_rules);
	tcase_add_test(tc, tmpl_class);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(attr_rules_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
