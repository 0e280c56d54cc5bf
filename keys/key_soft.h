/*
 * struct key over an in-memory P-256 key (struct ml_p256_key): unit tests,
 * benchmarks, the load generator and the counterfeit tool.  Never the key
 * of an installed program: those open keys through a provider (key.h).
 */
#ifndef KEY_SOFT_H
#define KEY_SOFT_H

#include "key.h"

/* k uses sk (borrowed: keep it alive); random is ml_rand(). */
void	key_soft_init(struct key *k, struct ml_p256_key *sk);

#endif
