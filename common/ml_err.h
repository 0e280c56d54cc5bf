/*
 * mintline error codes: one table, translated once at each boundary
 * (ml_err_to_ckr() in pkcs11/, ml_err_to_sw() in chip-applet/).
 */
#ifndef ML_ERR_H
#define ML_ERR_H

#define ML_ERRORS(X)							\
	X(ML_OK,		  0, "success")				\
	X(ML_ERR_INTERNAL,	 -1, "internal error")			\
	X(ML_ERR_NOMEM,		 -2, "out of memory")			\
	X(ML_ERR_SHORT,		 -3, "message truncated")		\
	X(ML_ERR_FORMAT,	 -4, "malformed message")		\
	X(ML_ERR_TRAILING,	 -5, "unexpected trailing data")	\
	X(ML_ERR_TOO_LARGE,	 -6, "length over limit")		\
	X(ML_ERR_STATE,		 -7, "not allowed in this state")	\
	X(ML_ERR_AUTH,		 -8, "authentication failed")		\
	X(ML_ERR_CERT,		 -9, "certificate rejected")		\
	X(ML_ERR_IO,		-10, "I/O error")			\
	X(ML_ERR_NOT_FOUND,	-11, "not found")			\
	X(ML_ERR_EXISTS,	-12, "already exists")			\
	X(ML_ERR_PIN,		-13, "PIN incorrect")			\
	X(ML_ERR_LOCKED,	-14, "blocked")				\
	X(ML_ERR_PERM,		-15, "security status not satisfied")	\
	X(ML_ERR_FULL,		-16, "no space left")			\
	X(ML_ERR_ARG,		-17, "invalid argument")		\
	X(ML_ERR_CRYPTO,	-18, "cryptographic operation failed")	\
	X(ML_ERR_REMOVED,	-19, "chip removed")			\
	X(ML_ERR_TIMEOUT,	-20, "timed out")			\
	X(ML_ERR_UNSUPPORTED,	-21, "not supported")			\
	X(ML_ERR_REJECTED,	-22, "rejected")

enum ml_err {
#define ML_ERR_ENUM(name, value, text) name = (value),
	ML_ERRORS(ML_ERR_ENUM)
#undef ML_ERR_ENUM
};

#define ML_MUST_CHECK	__attribute__((warn_unused_result))
#define ML_NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* Parser guards: assume an `int r` and an `out:` label in scope. */
#define ML_TRY(expr)		do { if ((r = (expr)) != 0) { goto out; } } while (0)
#define ML_ENSURE(cond, err)	do { if (!(cond)) { r = (err); goto out; } } while (0)

/* Returns a static string for r; unknown values give "unknown error". */
const char	*ml_strerror(int r);

/* Returns the symbolic name ("ML_ERR_SHORT") for r, for logs and tests. */
const char	*ml_errname(int r);

#endif
