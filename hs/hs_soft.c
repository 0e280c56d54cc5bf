/* Software keyops over a struct ml_p256_key (tests, benchmarks). */
#include "hs_api.h"

static int
soft_sign(void *ctx, const uint8_t digest[ML_SHA256_LEN],
    uint8_t ret_sig[ML_P256_SIG_LEN])
{
	return ml_p256_sign_digest(ctx, digest, ML_SHA256_LEN, ret_sig);
}

static int
soft_ecdh(void *ctx, const uint8_t peer[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	return ml_p256_ecdh(ctx, peer, ML_P256_PUB_LEN, ret_secret);
}

void
hs_soft_keyops(struct ml_p256_key *key, struct hs_keyops *ret)
{
	ret->ctx = key;
	ret->sign = soft_sign;
	ret->ecdh = soft_ecdh;
	ret->random = NULL;
}
