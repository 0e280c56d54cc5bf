/* Software keys (key_soft.h). */
#include <string.h>

#include "key_soft.h"

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

static const struct key_class soft_class = {
	.name = "soft",
	.sign = soft_sign,
	.ecdh = soft_ecdh,
};

void
key_soft_init(struct key *k, struct ml_p256_key *sk)
{
	uint8_t pub[ML_P256_PUB_LEN];

	key_init(k, &soft_class, sk, NULL);
	if (ml_p256_key_pub(sk, pub) == 0) {
		memcpy(k->pub, pub, sizeof(pub));
		k->has_pub = true;
	}
}
