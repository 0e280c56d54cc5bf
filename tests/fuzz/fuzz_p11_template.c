/*
 * libFuzzer target: the PKCS#11 module's template handling
 * (pkcs11/template.c, pkcs11/attr_rules.c).
 *
 * The input is a chip attribute blob, as any host could have written it
 * to a chip.  Checks: p11m_blob_parse() either fails and leaves its output
 * alone, or succeeds and the result writes back to a blob that parses to
 * the same set (a fixed point after one round).  The parsed set is then
 * used as a caller's template for every creating and modifying operation
 * of the rule checker, for every object class we serve; a success must
 * yield a set holding each template value, and reading every attribute
 * back follows the v2.40 §5.7 output rules.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ml_wr.h"
#include "p11m.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)	do { if (!(cond)) { abort(); } } while (0)

static const struct {
	CK_OBJECT_CLASS	 cls;
	CK_KEY_TYPE	 kt;
} kinds[] = {
	{ CKO_DATA, 0 },
	{ CKO_CERTIFICATE, 0 },
	{ CKO_PUBLIC_KEY, CKK_EC },
	{ CKO_PRIVATE_KEY, CKK_EC },
	{ CKO_SECRET_KEY, CKK_AES },
	{ CKO_SECRET_KEY, CKK_GENERIC_SECRET },
};

static const enum p11m_aop ops[] = {
	P11M_AOP_CREATE, P11M_AOP_GENERATE, P11M_AOP_DERIVE, P11M_AOP_SET,
	P11M_AOP_COPY,
};

static void
same_set(const struct p11m_attrs *a, const struct p11m_attrs *b)
{
	size_t i;

	CHECK(a->n == b->n);
	for (i = 0; i < a->n; i++) {
		const struct p11m_attr *y = p11m_attrs_get(b, a->v[i].type);

		CHECK(y != NULL && y->len == a->v[i].len);
		CHECK(y->len == 0 || memcmp(y->val, a->v[i].val, y->len) == 0);
	}
}

static void
rules(const struct p11m_attrs *in)
{
	CK_ATTRIBUTE tmpl[P11M_MAX_TMPL_ATTRS];
	uint8_t buf[P11M_MAX_ATTR_LEN];
	size_t i, k, o, n = in->n;

	for (i = 0; i < n; i++) {
		tmpl[i].type = in->v[i].type;
		tmpl[i].pValue = in->v[i].val;
		tmpl[i].ulValueLen = in->v[i].len;
	}
	for (k = 0; k < ML_NELEM(kinds); k++) {
		struct p11m_attrs base = { 0 };

		/* An existing object of this kind, for SET and COPY. */
		CHECK(p11m_attr_apply(P11M_AOP_DERIVE, kinds[k].cls,
		    kinds[k].kt, NULL, 0, NULL, false, &base) == CKR_OK);
		for (o = 0; o < ML_NELEM(ops); o++) {
			struct p11m_attrs out = { 0 };
			CK_RV rv;

			rv = p11m_attr_apply(ops[o], kinds[k].cls, kinds[k].kt,
			    tmpl, n, &base, (o & 1) != 0, &out);
			if (rv != CKR_OK) {
				CHECK(out.n == 0 && out.v == NULL);
				continue;
			}
			/* Every template value is in the result. */
			CHECK(p11m_attrs_match(&out, tmpl, n));
			for (i = 0; i < out.n; i++) {
				CK_ATTRIBUTE q = { out.v[i].type, buf,
				    sizeof(buf) };

				rv = p11m_attr_get(kinds[k].cls, kinds[k].kt,
				    &out, &q);
				CHECK(rv == CKR_OK || rv == CKR_ATTRIBUTE_SENSITIVE);
				CHECK(rv != CKR_OK || q.ulValueLen ==
				    out.v[i].len);
				CHECK(rv == CKR_OK || q.ulValueLen ==
				    CK_UNAVAILABLE_INFORMATION);
			}
			p11m_attrs_free(&out);
		}
		p11m_attrs_free(&base);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p11m_attrs a, b = { 0 };
	struct ml_wr w = ml_wr_dyn(2 * P11M_MAX_ATTR_LEN);
	int r;

	memset(&a, 0xA5, sizeof(a));
	r = p11m_blob_parse(data, size, &a);
	if (r != 0) {
		/* Untouched on failure. */
		CHECK(a.n == (size_t)0xA5A5A5A5A5A5A5A5ULL);
		return 0;
	}
	CHECK(a.n <= P11M_MAX_TMPL_ATTRS);
	CHECK(p11m_blob_write(&a, &w) == 0);
	CHECK(p11m_blob_parse(w.p, w.len, &b) == 0);
	same_set(&a, &b);
	/* A canonical blob is a fixed point. */
	if (w.len == size) {
		CHECK(memcmp(w.p, data, size) == 0);
	}
	rules(&a);
	p11m_attrs_free(&a);
	p11m_attrs_free(&b);
	ml_wr_free(&w);
	return 0;
}
