/*
 * Secret hygiene: one primitive each (Monocypher, OpenSSH).
 */
#ifndef ML_WIPE_H
#define ML_WIPE_H

#include <stdbool.h>
#include <stddef.h>

/* Overwrite n bytes at p with zeros; never optimised away.  NULL-safe. */
void	 ml_wipe(void *p, size_t n);
/* Wipe then free; NULL-safe. */
void	 ml_freezero(void *p, size_t n);
/* Constant-time equality of two n-byte buffers (CRYPTO_memcmp). */
bool	 ml_ct_eq(const void *a, const void *b, size_t n);

#endif
