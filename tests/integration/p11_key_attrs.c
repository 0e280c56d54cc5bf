/*
 * p11_key_attrs MODULE TOKEN-LABEL KEY-LABEL PIN-FILE
 *
 * Threat model "export the HSM private key" (BN-7, ID-14): loads a PKCS#11
 * module (SoftHSM2) with dlopen(), logs in to the token, finds the private
 * key KEY-LABEL and checks that it is CKA_SENSITIVE, CKA_ALWAYS_SENSITIVE,
 * CKA_NEVER_EXTRACTABLE and not CKA_EXTRACTABLE, and that C_GetAttributeValue
 * of CKA_VALUE (the private scalar) fails with CKR_ATTRIBUTE_SENSITIVE and
 * returns no bytes.  Positive control: CKA_EC_PARAMS of the same object is
 * readable.  Prints "ok - ..." / "FAIL - ..." lines; exit 0 when all hold.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

static int fails;

static void
ok(int cond, const char *what, const char *tok, const char *key)
{
	printf("%s - %s/%s: %s\n", cond ? "ok" : "FAIL", tok, key, what);
	if (!cond)
		fails++;
}

int
main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: p11_key_attrs MODULE TOKEN KEY PINFILE\n");
		return 2;
	}
	const char *tok = argv[2], *key = argv[3];
	char pin[256] = {0};
	FILE *f = fopen(argv[4], "r");
	if (f == NULL || fgets(pin, sizeof pin, f) == NULL) {
		perror(argv[4]);
		return 2;
	}
	fclose(f);
	pin[strcspn(pin, "\r\n")] = 0;

	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 2;
	}
	CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
	CK_FUNCTION_LIST_PTR p;
	if (gfl == NULL || gfl(&p) != CKR_OK || p->C_Initialize(NULL) != CKR_OK) {
		fprintf(stderr, "module init failed\n");
		return 2;
	}
	CK_SLOT_ID slots[64];
	CK_ULONG ns = 64, i;
	CK_SLOT_ID slot = (CK_SLOT_ID)-1;
	if (p->C_GetSlotList(CK_TRUE, slots, &ns) != CKR_OK)
		return 2;
	for (i = 0; i < ns; i++) {
		CK_TOKEN_INFO ti;
		if (p->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		size_t l = strlen(tok);
		if (l <= sizeof ti.label && memcmp(ti.label, tok, l) == 0 &&
		    (l == sizeof ti.label || ti.label[l] == ' '))
			slot = slots[i];
	}
	if (slot == (CK_SLOT_ID)-1) {
		fprintf(stderr, "token %s not found\n", tok);
		return 2;
	}
	CK_SESSION_HANDLE s;
	if (p->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK ||
	    p->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)) != CKR_OK) {
		fprintf(stderr, "open/login failed\n");
		return 2;
	}
	memset(pin, 0, sizeof pin);
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE q[] = {
		{CKA_CLASS, &cls, sizeof cls},
		{CKA_LABEL, (void *)key, strlen(key)},
	};
	CK_OBJECT_HANDLE h[4];
	CK_ULONG nh = 0;
	if (p->C_FindObjectsInit(s, q, 2) != CKR_OK ||
	    p->C_FindObjects(s, h, 4, &nh) != CKR_OK ||
	    p->C_FindObjectsFinal(s) != CKR_OK) {
		fprintf(stderr, "find failed\n");
		return 2;
	}
	ok(nh == 1, "exactly one private key with this label", tok, key);
	if (nh != 1)
		return 1;

	CK_BBOOL sens = 0, ext = 1, asens = 0, next = 0;
	CK_ATTRIBUTE a[] = {
		{CKA_SENSITIVE, &sens, sizeof sens},
		{CKA_EXTRACTABLE, &ext, sizeof ext},
		{CKA_ALWAYS_SENSITIVE, &asens, sizeof asens},
		{CKA_NEVER_EXTRACTABLE, &next, sizeof next},
	};
	CK_RV rv = p->C_GetAttributeValue(s, h[0], a, 4);
	ok(rv == CKR_OK, "flag attributes readable", tok, key);
	ok(sens == CK_TRUE, "CKA_SENSITIVE true", tok, key);
	ok(ext == CK_FALSE, "CKA_EXTRACTABLE false", tok, key);
	ok(asens == CK_TRUE, "CKA_ALWAYS_SENSITIVE true", tok, key);
	ok(next == CK_TRUE, "CKA_NEVER_EXTRACTABLE true", tok, key);

	/* positive control: a public attribute of the same object reads */
	unsigned char params[64];
	CK_ATTRIBUTE pc = {CKA_EC_PARAMS, params, sizeof params};
	rv = p->C_GetAttributeValue(s, h[0], &pc, 1);
	ok(rv == CKR_OK && pc.ulValueLen > 0 && pc.ulValueLen != CK_UNAVAILABLE_INFORMATION,
	    "control: CKA_EC_PARAMS readable", tok, key);

	/* the private value: length query and read both refused */
	CK_ATTRIBUTE v0 = {CKA_VALUE, NULL, 0};
	rv = p->C_GetAttributeValue(s, h[0], &v0, 1);
	ok(rv == CKR_ATTRIBUTE_SENSITIVE && v0.ulValueLen == CK_UNAVAILABLE_INFORMATION,
	    "CKA_VALUE length query -> CKR_ATTRIBUTE_SENSITIVE", tok, key);
	unsigned char val[256];
	memset(val, 0xA5, sizeof val);
	CK_ATTRIBUTE v = {CKA_VALUE, val, sizeof val};
	rv = p->C_GetAttributeValue(s, h[0], &v, 1);
	int untouched = 1;
	for (i = 0; i < sizeof val; i++)
		if (val[i] != 0xA5)
			untouched = 0;
	ok(rv == CKR_ATTRIBUTE_SENSITIVE && v.ulValueLen == CK_UNAVAILABLE_INFORMATION && untouched,
	    "CKA_VALUE read -> CKR_ATTRIBUTE_SENSITIVE, no bytes returned", tok, key);

	/* and it cannot be made extractable afterwards */
	CK_BBOOL t = CK_TRUE;
	CK_ATTRIBUTE se = {CKA_EXTRACTABLE, &t, sizeof t};
	rv = p->C_SetAttributeValue(s, h[0], &se, 1);
	ok(rv != CKR_OK, "C_SetAttributeValue(CKA_EXTRACTABLE=true) refused", tok, key);
	CK_BBOOL f2 = CK_FALSE;
	CK_ATTRIBUTE ss = {CKA_SENSITIVE, &f2, sizeof f2};
	rv = p->C_SetAttributeValue(s, h[0], &ss, 1);
	ok(rv != CKR_OK, "C_SetAttributeValue(CKA_SENSITIVE=false) refused", tok, key);

	p->C_Logout(s);
	p->C_CloseSession(s);
	p->C_Finalize(NULL);
	dlclose(lib);
	return fails ? 1 : 0;
}
