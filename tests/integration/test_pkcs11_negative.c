/*
 * The PKCS#11 module, loaded with dlopen() as an application would, on
 * an in-process line in a temporary directory: bad arguments get the
 * spec's exact CKR codes, failed operations end, PIN retry state is
 * truthful, a chip pulled out mid-operation gives CKR_DEVICE_REMOVED and
 * the next chip in that slot works, fork is detected, two threads sign
 * at once, the module is silent unless asked to log.  With "stress":
 * C_Finalize while 8 threads are inside the module (test_stress).  With
 * "hold": one process of the sharing test of test-pkcs11-tool.sh (hold).
 *
 *	test_pkcs11_negative MODULE.so [stress]
 *	test_pkcs11_negative MODULE.so hold TOKEN PIN KEYLABEL READY STOP
 *
 * Exit 0 pass, 1 fail.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <p11-kit/pkcs11.h>

#include "chip.h"
#include "ml_ossl.h"
#include "p11m_v3.h"

static CK_FUNCTION_LIST *f;
static int failures;
static char dir[256];

#define EXPECT(call, want) do {						\
	CK_RV got_ = (call);						\
	if (got_ != (CK_RV)(want)) {					\
		fprintf(stderr, "FAIL %s:%d: %s = 0x%lx, want %s (0x%lx)\n", \
		    __FILE__, __LINE__, #call, (unsigned long)got_,	\
		    #want, (unsigned long)(want));			\
		failures++;						\
	}								\
} while (0)

#define TRUTH(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__,	\
		    #cond);						\
		failures++;						\
	}								\
} while (0)

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static CK_BYTE p256_oid[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
    0x03, 0x01, 0x07 };

static void
make_chip(const char *kind, const char *serial, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (chip_manufacture(path, chip_kind_from_name(kind), serial) != 0) {
		fprintf(stderr, "cannot make chip %s\n", path);
		exit(1);
	}
}

static void
feed(int pos, const char *name)
{
	char link[512], tmp[600], target[512];

	snprintf(link, sizeof(link), "%s/line/pos-%02d", dir, pos);
	if (name == NULL) {
		unlink(link);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.new", link);
	snprintf(target, sizeof(target), "%s/%s", dir, name);
	unlink(tmp);
	if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
		perror("feed");
		exit(1);
	}
}

static CK_SESSION_HANDLE
open_rw(CK_SLOT_ID slot)
{
	CK_SESSION_HANDLE s = 0;

	EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
	    NULL, NULL, &s), CKR_OK);
	return s;
}

static CK_FLAGS
token_flags(CK_SLOT_ID slot)
{
	CK_TOKEN_INFO ti;

	memset(&ti, 0, sizeof(ti));
	EXPECT(f->C_GetTokenInfo(slot, &ti), CKR_OK);
	return ti.flags;
}

static void
keygen(CK_SESSION_HANDLE s, const char *label, CK_OBJECT_HANDLE *pub,
    CK_OBJECT_HANDLE *priv)
{
	CK_MECHANISM m = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_ATTRIBUTE pt[] = {
		{ CKA_EC_PARAMS, p256_oid, sizeof(p256_oid) },
		{ CKA_TOKEN, &yes, 1 },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_ATTRIBUTE kt[] = {
		{ CKA_TOKEN, &yes, 1 },
		{ CKA_SIGN, &yes, 1 },
		{ CKA_DERIVE, &yes, 1 },
	};

	EXPECT(f->C_GenerateKeyPair(s, &m, pt, 3, kt, 3, pub, priv), CKR_OK);
}

struct thr {
	CK_SLOT_ID		 slot;
	CK_OBJECT_HANDLE	 key;
	int			 bad;
};

static void *
sign_loop(void *arg)
{
	struct thr *t = arg;
	CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
	CK_BYTE md[32] = { 1, 2, 3 }, sig[64];
	CK_SESSION_HANDLE s;
	CK_ULONG n;
	int i;

	if (f->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL, &s) !=
	    CKR_OK) {
		t->bad++;
		return NULL;
	}
	for (i = 0; i < 200; i++) {
		n = sizeof(sig);
		if (f->C_SignInit(s, &m, t->key) != CKR_OK ||
		    f->C_Sign(s, md, sizeof(md), sig, &n) != CKR_OK || n != 64) {
			t->bad++;
		}
	}
	f->C_CloseSession(s);
	return NULL;
}

static void
test_args(void)
{
	CK_C_INITIALIZE_ARGS ia;
	CK_ULONG n = 0;
	CK_INFO info;
	CK_SESSION_HANDLE s;

	EXPECT(f->C_GetSlotList(CK_FALSE, NULL, &n),
	    CKR_CRYPTOKI_NOT_INITIALIZED);
	EXPECT(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
	memset(&ia, 0, sizeof(ia));
	ia.CreateMutex = (CK_CREATEMUTEX)1;	/* one of four: bad */
	EXPECT(f->C_Initialize(&ia), CKR_ARGUMENTS_BAD);
	memset(&ia, 0, sizeof(ia));
	ia.flags = CKF_OS_LOCKING_OK;
	EXPECT(f->C_Initialize(&ia), CKR_OK);
	EXPECT(f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	EXPECT(f->C_Finalize((void *)1), CKR_ARGUMENTS_BAD);
	EXPECT(f->C_Finalize(NULL), CKR_OK);
	EXPECT(f->C_Initialize(NULL), CKR_OK);
	EXPECT(f->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
	EXPECT(f->C_GetInfo(&info), CKR_OK);
	TRUTH(memcmp(info.manufacturerID, "mintline ", 9) == 0);
	EXPECT(f->C_GetSlotList(CK_FALSE, NULL, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(f->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
	TRUTH(n == 2);
	{
		CK_SLOT_ID one[1];

		n = 1;
		EXPECT(f->C_GetSlotList(CK_FALSE, one, &n),
		    CKR_BUFFER_TOO_SMALL);
		TRUTH(n == 2);
	}
	EXPECT(f->C_OpenSession(0, 0, NULL, NULL, &s),
	    CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	EXPECT(f->C_OpenSession(77, CKF_SERIAL_SESSION, NULL, NULL, &s),
	    CKR_SLOT_ID_INVALID);
	EXPECT(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, NULL),
	    CKR_ARGUMENTS_BAD);
	EXPECT(f->C_CloseSession(12345), CKR_SESSION_HANDLE_INVALID);
	EXPECT(f->C_Login(12345, CKU_USER, (CK_UTF8CHAR_PTR)"1234", 4),
	    CKR_SESSION_HANDLE_INVALID);
}

static void
test_pins(CK_SLOT_ID slot)
{
	CK_UTF8CHAR label[32];
	CK_SESSION_HANDLE s;

	memset(label, ' ', sizeof(label));
	memcpy(label, "neg", 3);
	EXPECT(f->C_InitToken(slot, (CK_UTF8CHAR_PTR)"12", 2, label),
	    CKR_PIN_LEN_RANGE);
	EXPECT(f->C_InitToken(slot, (CK_UTF8CHAR_PTR)"87654321", 8, label),
	    CKR_OK);
	TRUTH(token_flags(slot) & CKF_TOKEN_INITIALIZED);
	TRUTH(!(token_flags(slot) & CKF_USER_PIN_INITIALIZED));
	s = open_rw(slot);
	EXPECT(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"123456", 6),
	    CKR_USER_PIN_NOT_INITIALIZED);
	EXPECT(f->C_InitPIN(s, (CK_UTF8CHAR_PTR)"123456", 6),
	    CKR_USER_NOT_LOGGED_IN);
	EXPECT(f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)"87654321", 8), CKR_OK);
	EXPECT(f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)"87654321", 8),
	    CKR_USER_ALREADY_LOGGED_IN);
	EXPECT(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"87654321", 8),
	    CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
	EXPECT(f->C_InitPIN(s, (CK_UTF8CHAR_PTR)"12", 2), CKR_PIN_LEN_RANGE);
	EXPECT(f->C_InitPIN(s, (CK_UTF8CHAR_PTR)"123456", 6), CKR_OK);
	EXPECT(f->C_Logout(s), CKR_OK);
	EXPECT(f->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
	EXPECT(f->C_Login(s, 99, (CK_UTF8CHAR_PTR)"123456", 6),
	    CKR_USER_TYPE_INVALID);
	TRUTH(token_flags(slot) & CKF_USER_PIN_INITIALIZED);

	/* Retry counter: 3 tries, reported truthfully. */
	EXPECT(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"000000", 6),
	    CKR_PIN_INCORRECT);
	TRUTH(token_flags(slot) & CKF_USER_PIN_COUNT_LOW);
	EXPECT(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"000000", 6),
	    CKR_PIN_INCORRECT);
	TRUTH(token_flags(slot) & CKF_USER_PIN_FINAL_TRY);
	EXPECT(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"000000", 6),
	    CKR_PIN_LOCKED);
	TRUTH(token_flags(slot) & CKF_USER_PIN_LOCKED);
	EXPECT(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"123456", 6),
	    CKR_PIN_LOCKED);
	/* The SO unblocks (C_InitPIN = RESET RETRY COUNTER). */
	EXPECT(f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)"87654321", 8), CKR_OK);
	EXPECT(f->C_InitPIN(s, (CK_UTF8CHAR_PTR)"123456", 6), CKR_OK);
	EXPECT(f->C_Logout(s), CKR_OK);
	TRUTH(!(token_flags(slot) & (CKF_USER_PIN_LOCKED |
	    CKF_USER_PIN_COUNT_LOW)));
	EXPECT(f->C_SetPIN(s, (CK_UTF8CHAR_PTR)"123456", 6,
	    (CK_UTF8CHAR_PTR)"1", 1), CKR_PIN_LEN_RANGE);
	EXPECT(f->C_SetPIN(s, (CK_UTF8CHAR_PTR)"999999", 6,
	    (CK_UTF8CHAR_PTR)"1111", 4), CKR_PIN_INCORRECT);
	EXPECT(f->C_SetPIN(s, (CK_UTF8CHAR_PTR)"123456", 6,
	    (CK_UTF8CHAR_PTR)"123456", 6), CKR_OK);
	/* C_CloseAllSessions: every handle goes, and the login with them. */
	EXPECT(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"123456", 6), CKR_OK);
	EXPECT(f->C_CloseAllSessions(slot), CKR_OK);
	EXPECT(f->C_Logout(s), CKR_SESSION_HANDLE_INVALID);
	s = open_rw(slot);
	{
		CK_SESSION_INFO si;

		EXPECT(f->C_GetSessionInfo(s, &si), CKR_OK);
		TRUTH(si.state == CKS_RW_PUBLIC_SESSION);
	}
	EXPECT(f->C_CloseSession(s), CKR_OK);
}

/*
 * A self-signed P-256 certificate of at least 8 KB (a long
 * subjectAltName), DER in *ret (OPENSSL_free); its length.
 */
static int
big_cert(uint8_t **ret)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_EXTENSION *ext = NULL;
	X509_NAME *nm;
	char san[16000];
	size_t o = 0;
	int i, n = -1;

	*ret = NULL;
	for (i = 0; i < 400; i++) {
		o += (size_t)snprintf(san + o, sizeof(san) - o,
		    "%sDNS:host%03d.mintline.example", i ? "," : "", i);
	}
	if (k == NULL || x == NULL || !X509_set_version(x, 2) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 3600) == NULL ||
	    !X509_set_pubkey(x, k) || (nm = X509_get_subject_name(x)) == NULL ||
	    !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)"mintline-big", -1, -1, 0) ||
	    !X509_set_issuer_name(x, nm) ||
	    (ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
	    san)) == NULL || !X509_add_ext(x, ext, -1) ||
	    !X509_sign(x, k, EVP_sha256())) {
		goto out;
	}
	n = i2d_X509(x, ret);
out:
	X509_EXTENSION_free(ext);
	X509_free(x);
	EVP_PKEY_free(k);
	return n;
}

static void
test_objects(CK_SLOT_ID slot)
{
	CK_OBJECT_CLASS data = CKO_DATA, cert = CKO_CERTIFICATE,
	    privc = CKO_PRIVATE_KEY;
	CK_CERTIFICATE_TYPE wtls = CKC_WTLS;
	CK_KEY_TYPE ec = CKK_EC;
	CK_OBJECT_HANDLE h, pub, priv;
	CK_SESSION_HANDLE ro, rw;
	CK_BYTE buf[64];
	CK_ULONG n;

	EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro),
	    CKR_OK);
	rw = open_rw(slot);
	{
		CK_ATTRIBUTE t[] = { { CKA_LABEL, (char *)"x", 1 } };

		EXPECT(f->C_CreateObject(rw, t, 1, &h),
		    CKR_TEMPLATE_INCOMPLETE);
		EXPECT(f->C_CreateObject(rw, NULL, 1, &h), CKR_ARGUMENTS_BAD);
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &data, sizeof(data) },
		    { CKA_TOKEN, &yes, 1 }, { CKA_LABEL, (char *)"d", 1 } };

		EXPECT(f->C_CreateObject(ro, t, 3, &h), CKR_SESSION_READ_ONLY);
		EXPECT(f->C_CreateObject(rw, t, 3, &h),
		    CKR_USER_NOT_LOGGED_IN);
	}
	EXPECT(f->C_Login(rw, CKU_USER, (CK_UTF8CHAR_PTR)"123456", 6), CKR_OK);
	{
		/* An 8 KB certificate fits one token object. */
		CK_CERTIFICATE_TYPE x509 = CKC_X_509;
		uint8_t *der = NULL, *back = NULL;
		int dlen = big_cert(&der);
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &cert, sizeof(cert) },
		    { CKA_CERTIFICATE_TYPE, &x509, sizeof(x509) },
		    { CKA_TOKEN, &yes, 1 }, { CKA_LABEL, (char *)"big", 3 },
		    { CKA_VALUE, der, (CK_ULONG)dlen } };
		CK_ATTRIBUTE g[] = { { CKA_VALUE, NULL, 0 } };

		TRUTH(dlen >= 8192);
		EXPECT(f->C_CreateObject(rw, t, 5, &h), CKR_OK);
		EXPECT(f->C_GetAttributeValue(rw, h, g, 1), CKR_OK);
		TRUTH(g[0].ulValueLen == (CK_ULONG)dlen);
		if ((back = malloc(g[0].ulValueLen)) != NULL) {
			g[0].pValue = back;
			EXPECT(f->C_GetAttributeValue(rw, h, g, 1), CKR_OK);
			TRUTH(memcmp(back, der, (size_t)dlen) == 0);
		}
		EXPECT(f->C_DestroyObject(rw, h), CKR_OK);
		free(back);
		OPENSSL_free(der);
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &data, sizeof(data) },
		    { CKA_TOKEN, &yes, 4 } };

		EXPECT(f->C_CreateObject(rw, t, 2, &h),
		    CKR_ATTRIBUTE_VALUE_INVALID);
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &data, sizeof(data) },
		    { CKA_EC_POINT, (char *)"x", 1 } };

		EXPECT(f->C_CreateObject(rw, t, 2, &h),
		    CKR_ATTRIBUTE_TYPE_INVALID);
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &data, sizeof(data) },
		    { CKA_LABEL, (char *)"a", 1 }, { CKA_LABEL, (char *)"b", 1 } };

		EXPECT(f->C_CreateObject(rw, t, 3, &h),
		    CKR_TEMPLATE_INCONSISTENT);
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &cert, sizeof(cert) },
		    { CKA_CERTIFICATE_TYPE, &wtls, sizeof(wtls) },
		    { CKA_VALUE, (char *)"x", 1 } };

		EXPECT(f->C_CreateObject(rw, t, 3, &h),
		    CKR_ATTRIBUTE_VALUE_INVALID);
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &privc, sizeof(privc) },
		    { CKA_KEY_TYPE, &ec, sizeof(ec) },
		    { CKA_EC_PARAMS, p256_oid, sizeof(p256_oid) },
		    { CKA_VALUE, buf, 32 } };

		/* Private keys are generated in the chip, never imported. */
		EXPECT(f->C_CreateObject(rw, t, 4, &h),
		    CKR_ATTRIBUTE_VALUE_INVALID);
	}
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &data, sizeof(data) },
		    { CKA_TOKEN, &yes, 1 }, { CKA_LABEL, (char *)"d1", 2 },
		    { CKA_VALUE, (char *)"hello", 5 } };
		CK_ATTRIBUTE g[] = { { CKA_VALUE, buf, 2 } };
		CK_ATTRIBUTE set[] = { { CKA_CLASS, &cert, sizeof(cert) } };

		EXPECT(f->C_CreateObject(rw, t, 4, &h), CKR_OK);
		EXPECT(f->C_GetAttributeValue(rw, h, g, 1),
		    CKR_BUFFER_TOO_SMALL);
		TRUTH(g[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
		g[0].pValue = NULL;
		EXPECT(f->C_GetAttributeValue(rw, h, g, 1), CKR_OK);
		TRUTH(g[0].ulValueLen == 5);
		EXPECT(f->C_SetAttributeValue(rw, h, set, 1),
		    CKR_ATTRIBUTE_READ_ONLY);
		EXPECT(f->C_DestroyObject(ro, h), CKR_SESSION_READ_ONLY);
		EXPECT(f->C_DestroyObject(rw, h), CKR_OK);
		EXPECT(f->C_DestroyObject(rw, h), CKR_OBJECT_HANDLE_INVALID);
	}
	/* Copy a session object to the token, rename it, find it by label. */
	{
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &data, sizeof(data) },
		    { CKA_LABEL, (char *)"sess", 4 },
		    { CKA_VALUE, (char *)"v", 1 } };
		CK_ATTRIBUTE ct[] = { { CKA_TOKEN, &yes, 1 },
		    { CKA_LABEL, (char *)"copied", 6 } };
		CK_ATTRIBUTE bad[] = { { CKA_VALUE_LEN, &n, sizeof(n) } };
		CK_ATTRIBUTE rn[] = { { CKA_LABEL, (char *)"renamed", 7 } };
		CK_ATTRIBUTE q[] = { { CKA_LABEL, (char *)"renamed", 7 } };
		CK_ATTRIBUTE qold[] = { { CKA_LABEL, (char *)"copied", 6 } };
		CK_OBJECT_HANDLE c, found[2];
		CK_ULONG size = 0, nf = 0;

		EXPECT(f->C_CreateObject(ro, t, 3, &h), CKR_OK);
		EXPECT(f->C_CopyObject(rw, h, bad, 1, &c),
		    CKR_ATTRIBUTE_TYPE_INVALID);
		EXPECT(f->C_CopyObject(ro, h, ct, 2, &c), CKR_SESSION_READ_ONLY);
		EXPECT(f->C_CopyObject(rw, h, ct, 2, &c), CKR_OK);
		EXPECT(f->C_GetObjectSize(rw, c, &size), CKR_OK);
		TRUTH(size > 0);
		EXPECT(f->C_SetAttributeValue(rw, c, rn, 1), CKR_OK);
		EXPECT(f->C_FindObjectsInit(rw, q, 1), CKR_OK);
		EXPECT(f->C_FindObjects(rw, found, 2, &nf), CKR_OK);
		EXPECT(f->C_FindObjectsFinal(rw), CKR_OK);
		TRUTH(nf == 1 && found[0] == c);
		EXPECT(f->C_FindObjectsInit(rw, qold, 1), CKR_OK);
		EXPECT(f->C_FindObjectsInit(rw, qold, 1), CKR_OPERATION_ACTIVE);
		EXPECT(f->C_FindObjects(rw, found, 2, &nf), CKR_OK);
		EXPECT(f->C_FindObjectsFinal(rw), CKR_OK);
		TRUTH(nf == 0);
		EXPECT(f->C_FindObjects(rw, found, 2, &nf),
		    CKR_OPERATION_NOT_INITIALIZED);
		EXPECT(f->C_DestroyObject(rw, c), CKR_OK);
		/* A session object goes with its session. */
		EXPECT(f->C_CloseSession(ro), CKR_OK);
		EXPECT(f->C_GetObjectSize(rw, h, &size),
		    CKR_OBJECT_HANDLE_INVALID);
		EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL,
		    &ro), CKR_OK);
	}
	keygen(rw, "neg", &pub, &priv);
	{
		CK_ATTRIBUTE g[] = { { CKA_VALUE, buf, sizeof(buf) } };
		CK_ATTRIBUTE s1[] = { { CKA_SENSITIVE, &no, 1 } };
		CK_ATTRIBUTE s2[] = { { CKA_EXTRACTABLE, &yes, 1 } };

		EXPECT(f->C_GetAttributeValue(rw, priv, g, 1),
		    CKR_ATTRIBUTE_SENSITIVE);
		TRUTH(g[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
		EXPECT(f->C_SetAttributeValue(rw, priv, s1, 1),
		    CKR_ATTRIBUTE_READ_ONLY);
		EXPECT(f->C_SetAttributeValue(rw, priv, s2, 1),
		    CKR_ATTRIBUTE_READ_ONLY);
		EXPECT(f->C_CopyObject(rw, priv, NULL, 0, &h),
		    CKR_ACTION_PROHIBITED);
	}
	/* Sign: size query, short buffer, failure ends the operation. */
	{
		CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
		CK_MECHANISM bad = { CKM_SHA256_RSA_PKCS, NULL, 0 };
		CK_BYTE md[32] = { 9 }, sig[64];

		EXPECT(f->C_Sign(rw, md, 32, sig, &n),
		    CKR_OPERATION_NOT_INITIALIZED);
		EXPECT(f->C_SignInit(rw, &bad, priv), CKR_MECHANISM_INVALID);
		EXPECT(f->C_SignInit(rw, &m, pub), CKR_KEY_TYPE_INCONSISTENT);
		EXPECT(f->C_SignInit(rw, &m, 999999), CKR_KEY_HANDLE_INVALID);
		EXPECT(f->C_SignInit(rw, &m, priv), CKR_OK);
		EXPECT(f->C_SignInit(rw, &m, priv), CKR_OPERATION_ACTIVE);
		/* A NULL length ends the operation (v2.40 §5.11). */
		EXPECT(f->C_Sign(rw, md, 32, NULL, NULL), CKR_ARGUMENTS_BAD);
		EXPECT(f->C_Sign(rw, md, 32, NULL, &n),
		    CKR_OPERATION_NOT_INITIALIZED);
		EXPECT(f->C_SignInit(rw, &m, priv), CKR_OK);
		n = 0;
		EXPECT(f->C_Sign(rw, md, 32, NULL, &n), CKR_OK);
		TRUTH(n == 64);
		n = 10;
		EXPECT(f->C_Sign(rw, md, 32, sig, &n), CKR_BUFFER_TOO_SMALL);
		TRUTH(n == 64);
		EXPECT(f->C_Sign(rw, md, 32, sig, &n), CKR_OK);
		EXPECT(f->C_Sign(rw, md, 32, sig, &n),
		    CKR_OPERATION_NOT_INITIALIZED);
		EXPECT(f->C_SignInit(rw, &m, priv), CKR_OK);
		n = sizeof(sig);
		EXPECT(f->C_Sign(rw, md, 65, sig, &n), CKR_DATA_LEN_RANGE);
		EXPECT(f->C_Sign(rw, md, 32, sig, &n),
		    CKR_OPERATION_NOT_INITIALIZED);
		/* Verify, then a one-byte tamper. */
		EXPECT(f->C_SignInit(rw, &m, priv), CKR_OK);
		n = sizeof(sig);
		EXPECT(f->C_Sign(rw, md, 32, sig, &n), CKR_OK);
		EXPECT(f->C_VerifyInit(rw, &m, pub), CKR_OK);
		EXPECT(f->C_Verify(rw, md, 32, sig, 64), CKR_OK);
		sig[5] ^= 1;
		EXPECT(f->C_VerifyInit(rw, &m, pub), CKR_OK);
		EXPECT(f->C_Verify(rw, md, 32, sig, 64), CKR_SIGNATURE_INVALID);
		EXPECT(f->C_VerifyInit(rw, &m, pub), CKR_OK);
		EXPECT(f->C_Verify(rw, md, 32, sig, 63),
		    CKR_SIGNATURE_LEN_RANGE);
	}
	/* Multi-part ECDSA-SHA256 and SHA-256 agree with single-part. */
	{
		CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
		CK_MECHANISM sha = { CKM_SHA256, NULL, 0 };
		CK_BYTE msg[] = "the quick brown fox", sig[64], d1[32], d2[32];
		CK_ULONG ml = sizeof(msg) - 1, dl;

		EXPECT(f->C_SignInit(rw, &m, priv), CKR_OK);
		EXPECT(f->C_SignUpdate(rw, msg, 4), CKR_OK);
		EXPECT(f->C_SignUpdate(rw, msg + 4, ml - 4), CKR_OK);
		n = sizeof(sig);
		EXPECT(f->C_SignFinal(rw, sig, &n), CKR_OK);
		EXPECT(f->C_VerifyInit(rw, &m, pub), CKR_OK);
		EXPECT(f->C_Verify(rw, msg, ml, sig, 64), CKR_OK);
		EXPECT(f->C_VerifyInit(rw, &m, pub), CKR_OK);
		EXPECT(f->C_VerifyUpdate(rw, msg, 7), CKR_OK);
		EXPECT(f->C_VerifyUpdate(rw, msg + 7, ml - 7), CKR_OK);
		EXPECT(f->C_VerifyFinal(rw, sig, 64), CKR_OK);
		EXPECT(f->C_VerifyInit(rw, &m, pub), CKR_OK);
		EXPECT(f->C_Verify(rw, msg, ml - 1, sig, 64),
		    CKR_SIGNATURE_INVALID);
		EXPECT(f->C_DigestInit(rw, &sha), CKR_OK);
		dl = sizeof(d1);
		EXPECT(f->C_Digest(rw, msg, ml, d1, &dl), CKR_OK);
		EXPECT(f->C_DigestInit(rw, &sha), CKR_OK);
		EXPECT(f->C_DigestUpdate(rw, msg, 3), CKR_OK);
		EXPECT(f->C_DigestUpdate(rw, msg + 3, ml - 3), CKR_OK);
		dl = 31;
		EXPECT(f->C_DigestFinal(rw, d2, &dl), CKR_BUFFER_TOO_SMALL);
		TRUTH(dl == 32);
		EXPECT(f->C_DigestFinal(rw, d2, &dl), CKR_OK);
		TRUTH(memcmp(d1, d2, 32) == 0);
		/* A single-part call after an Update: the multi-part
		 * operation is active (CKR_OPERATION_ACTIVE) and goes on. */
		EXPECT(f->C_SignInit(rw, &m, priv), CKR_OK);
		EXPECT(f->C_SignUpdate(rw, msg, 4), CKR_OK);
		n = sizeof(sig);
		EXPECT(f->C_Sign(rw, msg, ml, sig, &n), CKR_OPERATION_ACTIVE);
		EXPECT(f->C_SignFinal(rw, sig, &n), CKR_OK);
		EXPECT(f->C_VerifyInit(rw, &m, pub), CKR_OK);
		EXPECT(f->C_VerifyUpdate(rw, msg, 4), CKR_OK);
		EXPECT(f->C_Verify(rw, msg, ml, sig, 64), CKR_OPERATION_ACTIVE);
		EXPECT(f->C_VerifyFinal(rw, sig, 64), CKR_OK);
		EXPECT(f->C_DigestInit(rw, &sha), CKR_OK);
		EXPECT(f->C_DigestUpdate(rw, msg, 3), CKR_OK);
		dl = sizeof(d2);
		EXPECT(f->C_Digest(rw, msg, ml, d2, &dl), CKR_OPERATION_ACTIVE);
		EXPECT(f->C_DigestUpdate(rw, msg + 3, ml - 3), CKR_OK);
		EXPECT(f->C_DigestFinal(rw, d2, &dl), CKR_OK);
		TRUTH(dl == 32 && memcmp(d1, d2, 32) == 0);
		/* And the other way: after a single-part size query the
		 * operation is single-part; Update and Final are refused
		 * and the single-part call still gives the right digest. */
		EXPECT(f->C_DigestInit(rw, &sha), CKR_OK);
		dl = 0;
		EXPECT(f->C_Digest(rw, msg, ml, NULL, &dl), CKR_OK);
		TRUTH(dl == 32);
		EXPECT(f->C_DigestFinal(rw, d2, &dl), CKR_OPERATION_ACTIVE);
		EXPECT(f->C_DigestUpdate(rw, msg, 3), CKR_OPERATION_ACTIVE);
		EXPECT(f->C_Digest(rw, msg, ml, d2, &dl), CKR_OK);
		TRUTH(dl == 32 && memcmp(d1, d2, 32) == 0);
		EXPECT(f->C_SignInit(rw, &m, priv), CKR_OK);
		n = 0;
		EXPECT(f->C_Sign(rw, msg, ml, NULL, &n), CKR_OK);
		TRUTH(n == 64);
		EXPECT(f->C_SignUpdate(rw, msg, 4), CKR_OPERATION_ACTIVE);
		EXPECT(f->C_SignFinal(rw, sig, &n), CKR_OPERATION_ACTIVE);
		EXPECT(f->C_Sign(rw, msg, ml, sig, &n), CKR_OK);
	}
	/* AES-GCM: chip-held key and a derived module-held key. */
	{
		CK_MECHANISM gen = { CKM_AES_KEY_GEN, NULL, 0 };
		CK_OBJECT_HANDLE k;
		CK_BYTE iv[12] = { 1 }, pt[40] = "attack at dawn", ct[80], back[80];
		CK_GCM_PARAMS gp = { iv, 12, 96, (CK_BYTE_PTR)"aad", 3, 128 };
		CK_MECHANISM gcm = { CKM_AES_GCM, &gp, sizeof(gp) };
		CK_ATTRIBUTE tok[] = { { CKA_TOKEN, &yes, 1 } };
		CK_ULONG cn, bn;

		EXPECT(f->C_GenerateKey(rw, &gen, tok, 1, &k),
		    CKR_ATTRIBUTE_VALUE_INVALID);
		EXPECT(f->C_GenerateKey(rw, &gen, NULL, 0, &k), CKR_OK);
		EXPECT(f->C_EncryptInit(rw, &gcm, k), CKR_OK);
		cn = sizeof(ct);
		EXPECT(f->C_Encrypt(rw, pt, sizeof(pt), ct, &cn), CKR_OK);
		TRUTH(cn == sizeof(pt) + 16);
		EXPECT(f->C_DecryptInit(rw, &gcm, k), CKR_OK);
		bn = sizeof(back);
		EXPECT(f->C_Decrypt(rw, ct, cn, back, &bn), CKR_OK);
		TRUTH(bn == sizeof(pt) && memcmp(back, pt, bn) == 0);
		ct[3] ^= 1;
		EXPECT(f->C_DecryptInit(rw, &gcm, k), CKR_OK);
		bn = sizeof(back);
		EXPECT(f->C_Decrypt(rw, ct, cn, back, &bn),
		    CKR_ENCRYPTED_DATA_INVALID);
		EXPECT(f->C_Decrypt(rw, ct, cn, back, &bn),
		    CKR_OPERATION_NOT_INITIALIZED);
		EXPECT(f->C_DestroyObject(rw, k), CKR_OK);
	}
	{
		/* An unsupported key type named in the template is an
		 * invalid attribute value; generic secrets may be longer
		 * than any hash block (the attribute limit applies). */
		CK_OBJECT_CLASS sk = CKO_SECRET_KEY, pk = CKO_PUBLIC_KEY;
		CK_KEY_TYPE rsa = CKK_RSA, gen = CKK_GENERIC_SECRET;
		CK_BYTE val[200], back[200];
		CK_ATTRIBUTE t1[] = { { CKA_CLASS, &pk, sizeof(pk) },
		    { CKA_KEY_TYPE, &rsa, sizeof(rsa) } };
		CK_ATTRIBUTE t2[] = { { CKA_CLASS, &sk, sizeof(sk) },
		    { CKA_KEY_TYPE, &gen, sizeof(gen) },
		    { CKA_VALUE, val, sizeof(val) },
		    { CKA_SENSITIVE, &no, 1 } };
		CK_ATTRIBUTE g[] = { { CKA_VALUE, back, sizeof(back) } };
		CK_OBJECT_HANDLE k;

		memset(val, 0x5a, sizeof(val));
		EXPECT(f->C_CreateObject(rw, t1, 2, &k),
		    CKR_ATTRIBUTE_VALUE_INVALID);
		EXPECT(f->C_CreateObject(rw, t2, 4, &k), CKR_OK);
		EXPECT(f->C_GetAttributeValue(rw, k, g, 1), CKR_OK);
		TRUTH(g[0].ulValueLen == sizeof(val) &&
		    memcmp(back, val, sizeof(val)) == 0);
		EXPECT(f->C_DestroyObject(rw, k), CKR_OK);
	}
	{
		/* ECDH with our own public point, into an AES key. */
		CK_BYTE point[67];
		CK_ATTRIBUTE gp[] = { { CKA_EC_POINT, point, sizeof(point) } };
		CK_OBJECT_CLASS sk = CKO_SECRET_KEY;
		CK_KEY_TYPE aes = CKK_AES;
		CK_ULONG len = 32;
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &sk, sizeof(sk) },
		    { CKA_KEY_TYPE, &aes, sizeof(aes) },
		    { CKA_VALUE_LEN, &len, sizeof(len) },
		    { CKA_SENSITIVE, &no, 1 }, { CKA_EXTRACTABLE, &yes, 1 } };
		CK_ECDH1_DERIVE_PARAMS dp = { CKD_NULL, 0, NULL, 0, NULL };
		CK_MECHANISM m = { CKM_ECDH1_DERIVE, &dp, sizeof(dp) };
		CK_OBJECT_HANDLE k1, k2;
		CK_BYTE v1[32], v2[32], iv[12] = { 7 }, ct[64], out[64];
		CK_ATTRIBUTE g1[] = { { CKA_VALUE, v1, 32 } };
		CK_ATTRIBUTE g2[] = { { CKA_VALUE, v2, 32 } };
		CK_GCM_PARAMS gcp = { iv, 12, 96, NULL, 0, 128 };
		CK_MECHANISM gcm = { CKM_AES_GCM, &gcp, sizeof(gcp) };
		CK_ULONG cn, on;

		EXPECT(f->C_GetAttributeValue(rw, pub, gp, 1), CKR_OK);
		dp.pPublicData = point;	/* DER OCTET STRING form */
		dp.ulPublicDataLen = sizeof(point);
		EXPECT(f->C_DeriveKey(rw, &m, priv, t, 5, &k1), CKR_OK);
		dp.pPublicData = point + 2;	/* raw 65-byte form */
		dp.ulPublicDataLen = 65;
		EXPECT(f->C_DeriveKey(rw, &m, priv, t, 5, &k2), CKR_OK);
		EXPECT(f->C_GetAttributeValue(rw, k1, g1, 1), CKR_OK);
		EXPECT(f->C_GetAttributeValue(rw, k2, g2, 1), CKR_OK);
		TRUTH(memcmp(v1, v2, 32) == 0);
		dp.ulPublicDataLen = 64;
		EXPECT(f->C_DeriveKey(rw, &m, priv, t, 5, &k2),
		    CKR_MECHANISM_PARAM_INVALID);
		dp.ulPublicDataLen = 65;
		dp.kdf = CKD_SHA1_KDF;
		EXPECT(f->C_DeriveKey(rw, &m, priv, t, 5, &k2),
		    CKR_MECHANISM_PARAM_INVALID);
		EXPECT(f->C_EncryptInit(rw, &gcm, k1), CKR_OK);
		cn = sizeof(ct);
		EXPECT(f->C_EncryptUpdate(rw, (CK_BYTE_PTR)"part one ", 9, ct,
		    &cn), CKR_OK);
		TRUTH(cn == 0);
		cn = sizeof(ct);
		EXPECT(f->C_EncryptFinal(rw, ct, &cn), CKR_OK);
		TRUTH(cn == 9 + 16);
		EXPECT(f->C_DecryptInit(rw, &gcm, k2), CKR_OK);
		on = sizeof(out);
		EXPECT(f->C_Decrypt(rw, ct, cn, out, &on), CKR_OK);
		TRUTH(on == 9 && memcmp(out, "part one ", 9) == 0);
		ct[cn - 1] ^= 1;
		EXPECT(f->C_DecryptInit(rw, &gcm, k2), CKR_OK);
		on = sizeof(out);
		EXPECT(f->C_Decrypt(rw, ct, cn, out, &on),
		    CKR_ENCRYPTED_DATA_INVALID);
	}
	/* Two threads signing on one token. */
	{
		pthread_t th[2];
		struct thr t[2] = { { slot, priv, 0 }, { slot, priv, 0 } };
		int i;

		for (i = 0; i < 2; i++) {
			pthread_create(&th[i], NULL, sign_loop, &t[i]);
		}
		for (i = 0; i < 2; i++) {
			pthread_join(th[i], NULL);
		}
		TRUTH(t[0].bad == 0 && t[1].bad == 0);
	}
	/*
	 * Our own writes kept the cache's view of the chip list current: a
	 * new session (which revalidates against LIST OBJECTS) keeps every
	 * handle.
	 */
	{
		CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
		CK_SESSION_HANDLE s3 = open_rw(slot);

		EXPECT(f->C_SignInit(s3, &m, priv), CKR_OK);
		EXPECT(f->C_CloseSession(s3), CKR_OK);
	}
	EXPECT(f->C_CloseSession(ro), CKR_OK);
	EXPECT(f->C_CloseSession(rw), CKR_OK);
}

static void *
late_removal(void *arg)
{
	struct timespec ts = { 0, 150 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	feed((int)(intptr_t)arg, NULL);
	return NULL;
}

/* Pull the chip mid-operation; the next chip in the slot works. */
static void
test_removal(CK_SLOT_ID slot)
{
	CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s, s2;
	CK_BYTE md[32] = { 1 }, sig[64];
	CK_SLOT_ID ev;
	CK_TOKEN_INFO ti;
	CK_ULONG n = sizeof(sig);

	s = open_rw(slot);
	EXPECT(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"123456", 6), CKR_OK);
	keygen(s, "gone", &pub, &priv);
	EXPECT(f->C_SignInit(s, &m, priv), CKR_OK);
	feed((int)slot, NULL);
	EXPECT(f->C_Sign(s, md, 32, sig, &n), CKR_DEVICE_REMOVED);
	EXPECT(f->C_GetTokenInfo(slot, &ti), CKR_TOKEN_NOT_PRESENT);
	EXPECT(f->C_SignInit(s, &m, priv), CKR_DEVICE_REMOVED);
	EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s2),
	    CKR_TOKEN_NOT_PRESENT);
	EXPECT(f->C_CloseSession(s), CKR_OK);
	(void)f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL);

	feed((int)slot, "second.img");
	EXPECT(f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL), CKR_OK);
	TRUTH(ev == slot);
	EXPECT(f->C_GetTokenInfo(slot, &ti), CKR_OK);
	TRUTH(memcmp(ti.serialNumber, "NEG-SECOND", 10) == 0);
	EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s2),
	    CKR_OK);
	n = 16;
	EXPECT(f->C_GenerateRandom(s2, sig, 16), CKR_OK);
	EXPECT(f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL), CKR_NO_EVENT);
	/* Calls answered from the cache notice a removal too. */
	feed((int)slot, NULL);
	EXPECT(f->C_FindObjectsInit(s2, NULL, 0), CKR_DEVICE_REMOVED);
	EXPECT(f->C_GenerateRandom(s2, sig, 16), CKR_DEVICE_REMOVED);
	EXPECT(f->C_CloseSession(s2), CKR_OK);
	feed((int)slot, "second.img");
	EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s2),
	    CKR_OK);
	EXPECT(f->C_FindObjectsInit(s2, NULL, 0), CKR_OK);
	EXPECT(f->C_FindObjectsFinal(s2), CKR_OK);
	EXPECT(f->C_CloseSession(s2), CKR_OK);
	/* A blocking C_WaitForSlotEvent wakes up for a removal. */
	(void)f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL);
	{
		pthread_t th;

		pthread_create(&th, NULL, late_removal, (void *)(intptr_t)slot);
		ev = 99;
		EXPECT(f->C_WaitForSlotEvent(0, &ev, NULL), CKR_OK);
		TRUTH(ev == slot);
		pthread_join(th, NULL);
	}
	EXPECT(f->C_GetTokenInfo(slot, &ti), CKR_TOKEN_NOT_PRESENT);
}

/* One raw APDU to a chip image (personalisation before the module). */
static uint16_t
raw(struct chip *c, const uint8_t *cmd, size_t n)
{
	static uint8_t resp[CHIP_MAX_RESP];
	size_t rn = 0;

	if (chip_transmit(c, cmd, n, resp, sizeof(resp), &rn) != 0 || rn < 2) {
		return 0;
	}
	return (uint16_t)((resp[rn - 2] << 8) | resp[rn - 1]);
}

#define FEATURE	"NOTE-SERIAL-AB12345678"

/* BN-3..BN-5: challenge, station authorisation, write (docs/apdu.md). */
static void
write_feature(struct chip *c, const uint8_t issuer[ML_P256_PRIV_LEN])
{
	static const uint8_t getch[] = { 0x00, 0x84, 0x00, 0x00, 0x10 };
	static uint8_t resp[CHIP_MAX_RESP];
	uint8_t msg[256], cmd[512], sig[ML_P256_SIG_LEN];
	struct ml_p256_key *k = NULL;
	size_t rn = 0, mlen = 0, flen = strlen(FEATURE), n;
	char serial[CHIP_SERIAL_LEN + 1];

	TRUTH(chip_transmit(c, getch, sizeof(getch), resp, sizeof(resp),
	    &rn) == 0 && rn == 18);
	snprintf(serial, sizeof(serial), "%-16s", "NEG-NOTE");
	memcpy(msg, "mintline note write v1", 22);
	mlen = 22;
	memcpy(msg + mlen, resp, 16);
	mlen += 16;
	memcpy(msg + mlen, serial, 16);
	mlen += 16;
	memcpy(msg + mlen, FEATURE, flen);
	mlen += flen;
	TRUTH(ml_p256_key_from_priv(issuer, &k) == 0);
	TRUTH(k != NULL && ml_p256_sign(k, msg, mlen, sig) == 0);
	ml_p256_key_free(k);
	n = 0;
	cmd[n++] = 0x80;
	cmd[n++] = 0x78;
	cmd[n++] = 0;
	cmd[n++] = 0;
	cmd[n++] = (uint8_t)(2 + flen + 64);
	cmd[n++] = 0;
	cmd[n++] = (uint8_t)flen;
	memcpy(cmd + n, FEATURE, flen);
	n += flen;
	memcpy(cmd + n, sig, 64);
	n += 64;
	TRUTH(raw(c, cmd, n) == 0x9000);
	n = 0;
	cmd[n++] = 0x80;
	cmd[n++] = 0x7A;
	cmd[n++] = 0;
	cmd[n++] = 0;
	cmd[n++] = (uint8_t)flen;
	memcpy(cmd + n, FEATURE, flen);
	n += flen;
	TRUTH(raw(c, cmd, n) == 0x9000);
}

/*
 * Personalise the note (INIT TOKEN, SO login, chip key, issuer and server
 * keys, LOCK) straight through the card OS, as the station does.
 */
static void
personalise_note(const char *name)
{
	static const uint8_t select[] = { 0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0,
	    0x00, 0x00, 0x08, 0x88, 0x4D, 0x4C, 0x01, 0x02 };
	static const uint8_t init[] = { 0x80, 0x50, 0x00, 0x00, 0x0B, 0x08,
	    '8', '7', '6', '5', '4', '3', '2', '1', 0x01, 'N' };
	static const uint8_t so[] = { 0x00, 0x20, 0x00, 0x82, 0x08,
	    '8', '7', '6', '5', '4', '3', '2', '1' };
	static const uint8_t chipkey[] = { 0x80, 0x46, 0x01, 0x00, 0x04, 0, 0,
	    0, 0 };
	static const uint8_t lock[] = { 0x80, 0x74, 0x00, 0x00 };
	uint8_t inst[5 + ML_P256_PUB_LEN], priv[ML_P256_PRIV_LEN];
	uint8_t issuer[ML_P256_PRIV_LEN];
	char path[512];
	struct chip *c = NULL;
	int ins;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (chip_open(path, &c) != 0) {
		fprintf(stderr, "chip_open %s\n", path);
		failures++;
		return;
	}
	TRUTH(raw(c, select, sizeof(select)) == 0x9000);
	TRUTH(raw(c, init, sizeof(init)) == 0x9000);
	TRUTH(raw(c, so, sizeof(so)) == 0x9000);
	TRUTH(raw(c, chipkey, sizeof(chipkey)) == 0x9000);
	for (ins = 0x70; ins <= 0x72; ins += 2) {
		inst[0] = 0x80;
		inst[1] = (uint8_t)ins;
		inst[2] = inst[3] = 0;
		inst[4] = ML_P256_PUB_LEN;
		TRUTH(ml_p256_keygen(priv, inst + 5) == 0);
		TRUTH(raw(c, inst, sizeof(inst)) == 0x9000);
		if (ins == 0x70) {
			memcpy(issuer, priv, sizeof(issuer));
		}
	}
	TRUTH(raw(c, lock, sizeof(lock)) == 0x9000);
	write_feature(c, issuer);
	chip_close(c);
}

/*
 * A personalised note: the chip key is usable without a PIN through
 * CKM_MINTLINE_INTERNAL_AUTH only; random comes 16 bytes at a time.
 */
static void
test_note(CK_SLOT_ID slot)
{
	CK_MECHANISM auth = { CKM_VENDOR_DEFINED | 0x4d4c0001UL, NULL, 0 };
	CK_MECHANISM ecdsa = { CKM_ECDSA, NULL, 0 };
	CK_OBJECT_CLASS pc = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE ft[] = { { CKA_CLASS, &pc, sizeof(pc) },
	    { CKA_LABEL, (char *)"chip", 4 } };
	CK_OBJECT_HANDLE key = 0;
	CK_SESSION_HANDLE s;
	CK_BYTE ch[16] = { 1, 2, 3 }, sig[64], rnd[100];
	CK_ULONG n = 0;

	EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s),
	    CKR_OK);
	EXPECT(f->C_GenerateRandom(s, rnd, sizeof(rnd)), CKR_OK);
	EXPECT(f->C_FindObjectsInit(s, ft, 2), CKR_OK);
	EXPECT(f->C_FindObjects(s, &key, 1, &n), CKR_OK);
	EXPECT(f->C_FindObjectsFinal(s), CKR_OK);
	TRUTH(n == 1);
	EXPECT(f->C_SignInit(s, &ecdsa, key), CKR_KEY_FUNCTION_NOT_PERMITTED);
	EXPECT(f->C_SignInit(s, &auth, key), CKR_OK);
	n = sizeof(sig);
	EXPECT(f->C_Sign(s, ch, 8, sig, &n), CKR_DATA_LEN_RANGE);
	EXPECT(f->C_SignInit(s, &auth, key), CKR_OK);
	n = sizeof(sig);
	EXPECT(f->C_Sign(s, ch, sizeof(ch), sig, &n), CKR_OK);
	TRUTH(n == 64);
	EXPECT(f->C_DestroyObject(s, key), CKR_ACTION_PROHIBITED);
	{
		/* The feature record as a read-only data object (BN-8). */
		CK_OBJECT_CLASS dc = CKO_DATA;
		CK_ATTRIBUTE fa[] = { { CKA_CLASS, &dc, sizeof(dc) },
		    { CKA_APPLICATION, (char *)"mintline-note-feature", 21 } };
		CK_BYTE val[2048];
		CK_ATTRIBUTE gv = { CKA_VALUE, val, sizeof(val) };
		CK_ATTRIBUTE sv = { CKA_LABEL, (char *)"x", 1 };
		CK_OBJECT_HANDLE fo = 0;

		n = 0;
		EXPECT(f->C_FindObjectsInit(s, fa, 2), CKR_OK);
		EXPECT(f->C_FindObjects(s, &fo, 1, &n), CKR_OK);
		EXPECT(f->C_FindObjectsFinal(s), CKR_OK);
		TRUTH(n == 1);
		EXPECT(f->C_GetAttributeValue(s, fo, &gv, 1), CKR_OK);
		TRUTH(gv.ulValueLen > strlen(FEATURE) && memmem(val,
		    gv.ulValueLen, FEATURE, strlen(FEATURE)) != NULL);
		EXPECT(f->C_SetAttributeValue(s, fo, &sv, 1),
		    CKR_ACTION_PROHIBITED);
		EXPECT(f->C_DestroyObject(s, fo), CKR_ACTION_PROHIBITED);
	}
	EXPECT(f->C_CloseSession(s), CKR_OK);
}

static void
test_fork(void)
{
	pid_t pid;
	int st = 0;

	fflush(NULL);
	if ((pid = fork()) == 0) {
		CK_ULONG n = 0;

		/* The child must see a new process: not initialised. */
		if (f->C_GetSlotList(CK_FALSE, NULL, &n) !=
		    CKR_CRYPTOKI_NOT_INITIALIZED) {
			_exit(3);
		}
		if (f->C_Initialize(NULL) != CKR_OK ||
		    f->C_GetSlotList(CK_FALSE, NULL, &n) != CKR_OK || n != 2 ||
		    f->C_Finalize(NULL) != CKR_OK) {
			_exit(4);
		}
		_exit(0);
	}
	TRUTH(pid > 0 && waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "FAIL: fork child: status 0x%x\n", st);
		failures++;
	}
}

/* Read a whole small file into buf (NUL-terminated); its length. */
static size_t
slurp(const char *path, char *buf, size_t cap)
{
	FILE *fp = fopen(path, "r");
	size_t n = 0;

	if (fp != NULL) {
		n = fread(buf, 1, cap - 1, fp);
		fclose(fp);
	}
	buf[n] = '\0';
	return n;
}

/*
 * The module is silent by default (nothing on stderr even for a bad
 * configuration line); MINTLINE_PKCS11_LOG=LEVEL:FILE, or the "log" line
 * of the configuration file, sends its messages to FILE.  Module
 * finalized on entry and on return.
 */
static void
test_logging(void)
{
	char conf[512], errpath[512], logpath[512], buf[4096], line[600];
	FILE *cf;
	int saved, fd;

	snprintf(conf, sizeof(conf), "%s/pkcs11.conf", dir);
	snprintf(errpath, sizeof(errpath), "%s/stderr.txt", dir);
	snprintf(logpath, sizeof(logpath), "%s/module.log", dir);
	if ((cf = fopen(conf, "w")) == NULL) {
		failures++;
		return;
	}
	fputs("no such setting here\n", cf);
	fclose(cf);
	setenv("MINTLINE_PKCS11_CONF", conf, 1);
	fflush(stderr);
	saved = dup(2);
	fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	EXPECT(f->C_Initialize(NULL), CKR_OK);
	EXPECT(f->C_Finalize(NULL), CKR_OK);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	TRUTH(slurp(errpath, buf, sizeof(buf)) == 0);

	snprintf(line, sizeof(line), "warn:%s", logpath);
	setenv("MINTLINE_PKCS11_LOG", line, 1);
	EXPECT(f->C_Initialize(NULL), CKR_OK);
	EXPECT(f->C_Finalize(NULL), CKR_OK);
	slurp(logpath, buf, sizeof(buf));
	TRUTH(strstr(buf, "unknown line ignored") != NULL);
	unsetenv("MINTLINE_PKCS11_LOG");

	/* The same from the configuration file. */
	unlink(logpath);
	if ((cf = fopen(conf, "w")) == NULL) {
		failures++;
		return;
	}
	fprintf(cf, "log warn:%s\nstill no such setting\n", logpath);
	fclose(cf);
	EXPECT(f->C_Initialize(NULL), CKR_OK);
	EXPECT(f->C_Finalize(NULL), CKR_OK);
	slurp(logpath, buf, sizeof(buf));
	TRUTH(strstr(buf, "still") == NULL &&
	    strstr(buf, ":2: unknown line ignored") != NULL);
	unsetenv("MINTLINE_PKCS11_CONF");
}

/*
 * C_Finalize while other threads are inside the module (OP-3): 8 threads
 * sign, find objects and open/close sessions while the main thread
 * finalizes and re-initializes, P11NEG_STRESS_ROUNDS times (200), after
 * 1..3 times P11NEG_STRESS_MS (1) milliseconds each.  Every
 * call answers a CKR the spec allows for a module that went away under
 * it; nothing crashes (ASan), nothing hangs (the test's timeout), and the
 * lock order is one helgrind/DRD accept.
 */
struct stress {
	CK_SLOT_ID	 slot;
	int		 kind;		/* 0 sign, 1 find, 2 open/close */
	unsigned	 ok, bad;
	CK_RV		 first_bad;
};

/* Under a mutex, not an atomic: helgrind and DRD see the ordering. */
static pthread_mutex_t stress_lock = PTHREAD_MUTEX_INITIALIZER;
static bool stress_stop;

static bool
stress_stopped(void)
{
	bool stop;

	pthread_mutex_lock(&stress_lock);
	stop = stress_stop;
	pthread_mutex_unlock(&stress_lock);
	return stop;
}

static bool
stress_rv_ok(CK_RV rv)
{
	switch (rv) {
	case CKR_OK:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_USER_ALREADY_LOGGED_IN:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_KEY_HANDLE_INVALID:
	case CKR_OBJECT_HANDLE_INVALID:
	case CKR_OPERATION_NOT_INITIALIZED:
		return true;
	default:
		return false;
	}
}

#define STRESS_CALL(t, call) do {					\
	CK_RV rv_ = (call);						\
	if (!stress_rv_ok(rv_)) {					\
		if ((t)->bad++ == 0) {					\
			(t)->first_bad = rv_;				\
		}							\
	}								\
	if (rv_ != CKR_OK) {						\
		goto next;						\
	}								\
} while (0)

static void *
stress_worker(void *arg)
{
	struct stress *t = arg;
	CK_OBJECT_CLASS pc = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE q[] = { { CKA_CLASS, &pc, sizeof(pc) },
	    { CKA_LABEL, (char *)"stress", 6 } };
	CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
	CK_BYTE md[32] = { 9 }, sig[64];
	CK_OBJECT_HANDLE key, found[8];
	CK_SESSION_HANDLE s;
	CK_SESSION_INFO si;
	CK_ULONG n;
	CK_RV rv;

	while (!stress_stopped()) {
		s = CK_INVALID_HANDLE;
		STRESS_CALL(t, f->C_OpenSession(t->slot, CKF_SERIAL_SESSION,
		    NULL, NULL, &s));
		switch (t->kind) {
		case 0:
			rv = f->C_Login(s, CKU_USER,
			    (CK_UTF8CHAR_PTR)"123456", 6);
			STRESS_CALL(t, rv == CKR_USER_ALREADY_LOGGED_IN ?
			    CKR_OK : rv);
			STRESS_CALL(t, f->C_FindObjectsInit(s, q, 2));
			n = 0;
			rv = f->C_FindObjects(s, &key, 1, &n);
			(void)f->C_FindObjectsFinal(s);
			STRESS_CALL(t, rv);
			if (n != 1) {
				goto next;	/* logged out meanwhile */
			}
			STRESS_CALL(t, f->C_SignInit(s, &m, key));
			n = sizeof(sig);
			STRESS_CALL(t, f->C_Sign(s, md, sizeof(md), sig, &n));
			break;
		case 1:
			STRESS_CALL(t, f->C_FindObjectsInit(s, NULL, 0));
			n = 0;
			rv = f->C_FindObjects(s, found, 8, &n);
			(void)f->C_FindObjectsFinal(s);
			STRESS_CALL(t, rv);
			break;
		default:
			STRESS_CALL(t, f->C_GetSessionInfo(s, &si));
			break;
		}
		t->ok++;
next:
		if (s != CK_INVALID_HANDLE) {
			rv = f->C_CloseSession(s);
			if (!stress_rv_ok(rv) && t->bad++ == 0) {
				t->first_bad = rv;
			}
		}
	}
	return NULL;
}

static void
test_stress(CK_SLOT_ID slot)
{
	const char *env = getenv("P11NEG_STRESS_ROUNDS");
	const char *ms = getenv("P11NEG_STRESS_MS");	/* slower under valgrind */
	int rounds = env != NULL ? atoi(env) : 200, i;
	long base = ms != NULL ? atol(ms) : 1;
	struct stress t[8];
	pthread_t th[8];
	unsigned kind_ok[3] = { 0, 0, 0 };
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE pub, priv;
	CK_UTF8CHAR label[32];

	/* A token with a user PIN and one signing key. */
	EXPECT(f->C_Initialize(NULL), CKR_OK);
	memset(label, ' ', sizeof(label));
	memcpy(label, "stress", 6);
	EXPECT(f->C_InitToken(slot, (CK_UTF8CHAR_PTR)"87654321", 8, label),
	    CKR_OK);
	s = open_rw(slot);
	EXPECT(f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)"87654321", 8), CKR_OK);
	EXPECT(f->C_InitPIN(s, (CK_UTF8CHAR_PTR)"123456", 6), CKR_OK);
	EXPECT(f->C_Logout(s), CKR_OK);
	EXPECT(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"123456", 6), CKR_OK);
	keygen(s, "stress", &pub, &priv);
	EXPECT(f->C_Finalize(NULL), CKR_OK);

	EXPECT(f->C_Initialize(NULL), CKR_OK);
	for (i = 0; i < 8; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].slot = slot;
		t[i].kind = i % 3;
		if (pthread_create(&th[i], NULL, stress_worker, &t[i]) != 0) {
			fprintf(stderr, "FAIL: pthread_create\n");
			exit(1);
		}
	}
	for (i = 0; i < rounds; i++) {
		long pause = base * (1 + i % 3);
		struct timespec ts = { pause / 1000, pause % 1000 * 1000000 };

		nanosleep(&ts, NULL);
		EXPECT(f->C_Finalize(NULL), CKR_OK);
		EXPECT(f->C_Initialize(NULL), CKR_OK);
	}
	pthread_mutex_lock(&stress_lock);
	stress_stop = true;
	pthread_mutex_unlock(&stress_lock);
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		kind_ok[t[i].kind] += t[i].ok;
		if (t[i].bad > 0) {
			fprintf(stderr, "FAIL: stress thread %d (kind %d): %u "
			    "unexpected CKR, first 0x%lx\n", i, t[i].kind,
			    t[i].bad, (unsigned long)t[i].first_bad);
			failures++;
		}
	}
	/* The threads did work between the finalizations. */
	TRUTH(kind_ok[0] > 0 && kind_ok[1] > 0 && kind_ok[2] > 0);
	printf("stress: %d rounds; completed: %u signatures, %u searches, "
	    "%u sessions\n", rounds, kind_ok[0], kind_ok[1], kind_ok[2]);
	EXPECT(f->C_Finalize(NULL), CKR_OK);
}

/* The first slot whose token label starts with prefix; -1 if none. */
static long
slot_by_label(const char *prefix)
{
	CK_SLOT_ID slots[16];
	CK_TOKEN_INFO ti;
	CK_ULONG n = 16, i;

	if (f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK) {
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    memcmp(ti.label, prefix, strlen(prefix)) == 0) {
			return (long)slots[i];
		}
	}
	return -1;
}

/* Open a session, log in, find the private key labelled key, sign once.
 * 0 if every step answered CKR_OK and the signature verifies. */
static int
hold_sign_once(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
    CK_OBJECT_HANDLE pub)
{
	CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
	CK_BYTE md[32], sig[64];
	CK_ULONG n = sizeof(sig);
	CK_RV rv;
	int step = 0;

	memset(md, 0x42, sizeof(md));
	if ((rv = f->C_SignInit(s, &m, key)) != CKR_OK ||
	    (step++, rv = f->C_Sign(s, md, sizeof(md), sig, &n)) != CKR_OK ||
	    (step++, rv = f->C_VerifyInit(s, &m, pub)) != CKR_OK ||
	    (step++, rv = f->C_Verify(s, md, sizeof(md), sig, n)) != CKR_OK) {
		fprintf(stderr, "hold %ld: %s: 0x%lx\n", (long)getpid(),
		    (const char *[]){ "C_SignInit", "C_Sign", "C_VerifyInit",
		    "C_Verify" }[step], (unsigned long)rv);
		return 1;
	}
	return 0;
}

static int
hold_session(const char *token, const char *pin, const char *label,
    CK_SESSION_HANDLE *ret_s, CK_OBJECT_HANDLE *ret_key,
    CK_OBJECT_HANDLE *ret_pub)
{
	CK_OBJECT_CLASS pc = CKO_PRIVATE_KEY, uc = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE q[] = { { CKA_CLASS, &pc, sizeof(pc) },
	    { CKA_LABEL, (void *)label, strlen(label) } };
	CK_ATTRIBUTE qp[] = { { CKA_CLASS, &uc, sizeof(uc) },
	    { CKA_LABEL, (void *)label, strlen(label) } };
	CK_ULONG n = 0;
	CK_RV rv;
	long slot;

	if ((slot = slot_by_label(token)) < 0) {
		fprintf(stderr, "hold: no token \"%s\"\n", token);
		return 1;
	}
	if ((rv = f->C_OpenSession((CK_SLOT_ID)slot, CKF_SERIAL_SESSION, NULL,
	    NULL, ret_s)) != CKR_OK) {
		fprintf(stderr, "hold: C_OpenSession: 0x%lx\n", rv);
		return 1;
	}
	rv = f->C_Login(*ret_s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		fprintf(stderr, "hold: C_Login: 0x%lx\n", rv);
		return 1;
	}
	if (f->C_FindObjectsInit(*ret_s, q, 2) != CKR_OK ||
	    f->C_FindObjects(*ret_s, ret_key, 1, &n) != CKR_OK || n != 1 ||
	    f->C_FindObjectsFinal(*ret_s) != CKR_OK ||
	    f->C_FindObjectsInit(*ret_s, qp, 2) != CKR_OK ||
	    f->C_FindObjects(*ret_s, ret_pub, 1, &n) != CKR_OK || n != 1 ||
	    f->C_FindObjectsFinal(*ret_s) != CKR_OK) {
		fprintf(stderr, "hold: key \"%s\" not found\n", label);
		return 1;
	}
	return 0;
}

/*
 * Sharing (OP-3): hold a session on the token whose label starts with
 * TOKEN and sign in a loop until STOPFILE exists, while other processes
 * (the test script's pkcs11-tool -L and --sign) use the same chip; a
 * forked child initialises the module again and signs too.  READYFILE is
 * created after the first signature.  Exit 0 if every signature of this
 * process and of the child succeeded.
 */
static int
hold(const char *token, const char *pin, const char *label,
    const char *ready, const char *stop)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key, pub;
	unsigned ok = 0, bad = 0;
	time_t end = time(NULL) + 120;
	pid_t child = -1;
	int st = 0, fd;

	if (f->C_Initialize(NULL) != CKR_OK ||
	    hold_session(token, pin, label, &s, &key, &pub) != 0) {
		return 1;
	}
	while (access(stop, F_OK) != 0 && time(NULL) < end) {
		if (hold_sign_once(s, key, pub) != 0) {
			bad++;
		} else {
			ok++;
		}
		if (ok == 1 && (fd = open(ready, O_WRONLY | O_CREAT, 0600)) >= 0) {
			close(fd);
		}
		if (ok == 5 && child < 0) {
			fflush(NULL);
			if ((child = fork()) == 0) {
				CK_SESSION_HANDLE cs;
				CK_OBJECT_HANDLE ck, cp;
				int i, cbad = 0;

				if (f->C_Initialize(NULL) != CKR_OK ||
				    hold_session(token, pin, label, &cs, &ck,
				    &cp) != 0) {
					_exit(2);
				}
				for (i = 0; i < 20; i++) {
					cbad += hold_sign_once(cs, ck, cp);
				}
				f->C_Finalize(NULL);
				_exit(cbad == 0 ? 0 : 3);
			}
		}
	}
	if (child > 0 && (waitpid(child, &st, 0) != child ||
	    !WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
		fprintf(stderr, "hold: forked child failed: status 0x%x\n", st);
		bad++;
	}
	if (child <= 0) {
		fprintf(stderr, "hold: too few signatures to fork a child\n");
		bad++;
	}
	printf("hold: %u signatures, %u failed\n", ok, bad);
	f->C_Finalize(NULL);
	return bad == 0 && ok > 0 ? 0 : 1;
}

static void
test_interfaces(void *lib)
{
	CK_C_GetInterfaceList gil = (CK_C_GetInterfaceList)dlsym(lib,
	    "C_GetInterfaceList");
	CK_C_GetInterface gi = (CK_C_GetInterface)dlsym(lib,
	    "C_GetInterface");
	CK_INTERFACE list[4], *it = NULL;
	CK_VERSION v240 = { 2, 40 };
	CK_ULONG n = 0;

	TRUTH(gil != NULL && gi != NULL);
	if (gil == NULL || gi == NULL) {
		return;
	}
	TRUTH(dlsym(lib, "C_Initialize") == NULL);	/* not exported */
	EXPECT(gil(NULL, NULL), CKR_ARGUMENTS_BAD);
	EXPECT(gil(NULL, &n), CKR_OK);
	TRUTH(n == 2);
	n = 1;
	EXPECT(gil(list, &n), CKR_BUFFER_TOO_SMALL);
	n = 4;
	EXPECT(gil(list, &n), CKR_OK);
	EXPECT(gi((CK_UTF8CHAR_PTR)"PKCS 11", NULL, &it, 0), CKR_OK);
	TRUTH(it != NULL && ((CK_VERSION *)it->pFunctionList)->major == 3);
	EXPECT(gi(NULL, &v240, &it, 0), CKR_OK);
	TRUTH(it != NULL && ((CK_VERSION *)it->pFunctionList)->major == 2);
	EXPECT(gi((CK_UTF8CHAR_PTR)"Vendor X", NULL, &it, 0),
	    CKR_ARGUMENTS_BAD);
}

int
main(int argc, char **argv)
{
	CK_C_GetFunctionList gfl;
	char spec[512], path[512];
	void *lib;

	if (argc == 8 && strcmp(argv[2], "hold") == 0) {
		if ((lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)) == NULL ||
		    (gfl = (CK_C_GetFunctionList)dlsym(lib,
		    "C_GetFunctionList")) == NULL || gfl(&f) != CKR_OK) {
			fprintf(stderr, "cannot load %s\n", argv[1]);
			return 1;
		}
		return hold(argv[3], argv[4], argv[5], argv[6], argv[7]);
	}
	if (argc != 2 && (argc != 3 || strcmp(argv[2], "stress") != 0)) {
		fprintf(stderr, "usage: %s MODULE.so [stress]\n"
		    "       %s MODULE.so hold TOKEN PIN KEYLABEL READYFILE "
		    "STOPFILE\n", argv[0], argv[0]);
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s/p11neg-XXXXXX",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/line", dir);
	mkdir(path, 0700);
	make_chip("reader", "NEG-FIRST", "first.img");
	make_chip("reader", "NEG-SECOND", "second.img");
	make_chip("note", "NEG-NOTE", "note.img");
	personalise_note("note.img");
	feed(0, "first.img");
	feed(1, "note.img");
	snprintf(path, sizeof(path), "%s/line/positions", dir);
	{
		FILE *pf = fopen(path, "w");

		if (pf == NULL) {
			return 1;
		}
		fputs("2\n", pf);
		fclose(pf);
	}
	snprintf(spec, sizeof(spec), "inproc:%s/line", dir);
	setenv("MINTLINE_PKCS11_TRANSPORT", spec, 1);

	if ((lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
	if (gfl == NULL || gfl(&f) != CKR_OK) {
		fprintf(stderr, "C_GetFunctionList missing\n");
		return 1;
	}
	if (argc == 3) {
		test_stress(0);
		goto done;
	}
	test_interfaces(lib);
	test_logging();
	test_args();
	test_pins(0);
	test_objects(0);
	test_note(1);
	test_fork();
	test_removal(0);
	EXPECT(f->C_Finalize(NULL), CKR_OK);
	{
		CK_ULONG n;

		EXPECT(f->C_GetSlotList(CK_FALSE, NULL, &n),
		    CKR_CRYPTOKI_NOT_INITIALIZED);
	}
done:
	if (failures == 0 && getenv("P11NEG_KEEP") == NULL) {
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0) {
			fprintf(stderr, "could not remove %s\n", dir);
		}
	}
	if (failures != 0 || getenv("P11NEG_KEEP") != NULL) {
		printf("work directory kept: %s\n", dir);
	}
	printf("%d failure(s)\n", failures);
	return failures == 0 ? 0 : 1;
}
