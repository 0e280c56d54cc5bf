/*
 * Small shared helpers: the variable-length output convention, blank
 * padding of the info structs, and the two fixed DER shapes of EC keys.
 */
#include <string.h>

#include "p11m.h"

/*
 * NULL dst: report size, CKR_OK.  Too small: report size,
 * CKR_BUFFER_TOO_SMALL (the operation stays active).  Otherwise copy and
 * report the exact size.  (PKCS#11 v2.40 base §5.2.)
 */
CK_RV
p11m_out(const uint8_t *src, size_t n, CK_BYTE_PTR dst, CK_ULONG_PTR dst_len)
{
	CK_ULONG room = *dst_len;

	*dst_len = n;
	if (dst == NULL) {
		return CKR_OK;
	}
	if (room < n) {
		return CKR_BUFFER_TOO_SMALL;
	}
	if (n > 0) {
		memcpy(dst, src, n);
	}
	return CKR_OK;
}

void
p11m_pad(CK_UTF8CHAR *dst, size_t width, const char *src)
{
	size_t n = strlen(src);

	if (n > width) {
		n = width;
	}
	memset(dst, ' ', width);
	memcpy(dst, src, n);
}

void
p11m_ec_point_der(const uint8_t point[ML_P256_PUB_LEN],
    uint8_t ret[P11M_EC_POINT_DER_LEN])
{
	ret[0] = 0x04;			/* OCTET STRING */
	ret[1] = ML_P256_PUB_LEN;	/* 0x41 */
	memcpy(ret + 2, point, ML_P256_PUB_LEN);
}

CK_RV
p11m_ec_point_parse(const uint8_t *p, size_t n, uint8_t ret[ML_P256_PUB_LEN])
{
	if (p == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	if (n == P11M_EC_POINT_DER_LEN && p[0] == 0x04 &&
	    p[1] == ML_P256_PUB_LEN && p[2] == 0x04) {
		p += 2;
		n -= 2;
	}
	if (n != ML_P256_PUB_LEN || p[0] != 0x04 ||
	    ml_p256_check_pub(p, n) != 0) {
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	memcpy(ret, p, ML_P256_PUB_LEN);
	return CKR_OK;
}

bool
p11m_ec_params_ok(const uint8_t *p, size_t n)
{
	/* DER OID 1.2.840.10045.3.1.7 (prime256v1/secp256r1) only. */
	return p != NULL && n == sizeof(ml_p256_oid_der) &&
	    memcmp(p, ml_p256_oid_der, n) == 0;
}
