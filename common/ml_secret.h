/*
 * Secrets read from files and the environment: PINs and fixed-size keys.
 * read(2) into fixed buffers on the stack that are wiped before return; no
 * stdio (its buffers would keep a copy), no heap.  Failures record an error
 * context (ml_err.h) naming the file and the errno text, never the secret.
 */
#ifndef ML_SECRET_H
#define ML_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"

#define ML_PIN_MAX	255	/* longest PIN accepted, without the NUL */
#define ML_KEYFILE_MAX	64	/* largest fixed-size key file, in bytes */

/*
 * Read a PIN from a pin-source:
 *	file:PATH	first line of the file (also a bare PATH, as before)
 *	env:NAME	the environment variable NAME (secure_getenv)
 *	NULL		ask on the terminal, echo off, with `prompt` (if
 *			prompt is NULL, a missing source is ML_ERR_ARG)
 * The PIN ends at the first CR or LF.  On success ret_pin holds it
 * NUL-terminated (1 .. cap - 1 characters; cap is at most ML_PIN_MAX + 1).
 * Returns 0, ML_ERR_IO (cannot open/read: path + errno text in the error
 * context), ML_ERR_FORMAT (empty first line, unset variable) or
 * ML_ERR_TOO_LARGE; ret_pin is wiped on failure.
 */
ML_MUST_CHECK int ml_pin_read(const char *src, const char *prompt,
	    char *ret_pin, size_t cap);

/*
 * Read a key of exactly len bytes (len <= ML_KEYFILE_MAX) stored as 2*len
 * hex digits, optionally followed by white space.  The file must not be
 * readable or writable by group or others.  Returns 0, ML_ERR_IO (path +
 * errno text), ML_ERR_PERM (mode) or ML_ERR_FORMAT; ret_key is untouched on
 * failure.
 */
ML_MUST_CHECK int ml_keyfile_read(const char *path, uint8_t *ret_key,
	    size_t len);

/*
 * Create a new key file of len random bytes in the format above, mode
 * 0600, refusing to replace an existing file (ML_ERR_EXISTS).
 */
ML_MUST_CHECK int ml_keyfile_create(const char *path, size_t len);

#endif
