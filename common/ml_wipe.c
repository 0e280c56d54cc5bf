#include <stdlib.h>

#include <openssl/crypto.h>

#include "ml_wipe.h"

void
ml_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0) {
		OPENSSL_cleanse(p, n);
	}
}

void
ml_freezero(void *p, size_t n)
{
	if (p == NULL) {
		return;
	}
	ml_wipe(p, n);
	free(p);
}

bool
ml_ct_eq(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}
