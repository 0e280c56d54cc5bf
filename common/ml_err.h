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
	X(ML_ERR_REJECTED,	-22, "rejected")				\
	X(ML_ERR_DISK_FULL,	-23, "disk full")				\
	X(ML_ERR_RESET,		-24, "chip reset by another client")

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

/*
 * Error context: what failed and why, carried next to the ML_ERR_* code
 * (after OpenSSH's error_fr, without changing any function signature).
 *
 * The function that sees the failure records one line of context in a
 * thread-local slot and returns the code it recorded it for:
 *
 *	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
 *		return ml_errf_sys(ML_ERR_IO, "%s", path);
 *	}					-> "/nope.key: No such file or directory"
 *
 * Callers in between pass r up unchanged; one that knows more may put a
 * prefix in front with ml_errpre() ("issuer key 1: ...").  The program's top
 * level prints ml_errmsg(r): the context if it was recorded for this very
 * code, else ml_strerror(r).  A context recorded for one code never labels
 * another, and ml_errclear() drops it before each new operation, so a
 * failure that was recovered from does not name a later one.
 *
 * The context names the object (file path, pkcs11: URI, reader name, chip
 * serial, server address) and the cause (errno text, CKR name, SCard error,
 * SW meaning, PIN tries left), never secret-bearing input.  The recording
 * function's name goes to the debug log (ML_LOG_LEVEL=debug), not to the
 * user.
 */
#define ML_ERRCTX_MAX	512

/* Record context for r; returns r.  ml_errf() passes the caller's name. */
int		 ml_errf_at(const char *fn, int r, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
/* The same with ": " and strerror(errno) appended (errno read first). */
int		 ml_errf_sys_at(const char *fn, int r, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
#define ml_errf(r, ...)		ml_errf_at(__func__, (r), __VA_ARGS__)
#define ml_errf_sys(r, ...)	ml_errf_sys_at(__func__, (r), __VA_ARGS__)

/*
 * Put "prefix: " in front of the context recorded for r (or in front of
 * ml_strerror(r) when there is none, which then becomes the context).
 * Returns r.  Does nothing for r == 0.
 */
int		 ml_errpre(int r, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

/*
 * A layer that translates r into another code keeps the context with it:
 * returns `to`, now labelled by what r's context said (or by
 * ml_strerror(r) when it had none).
 */
int		 ml_errrecode(int r, int to);

/* The context recorded for r on this thread, else ml_strerror(r). */
const char	*ml_errmsg(int r);
/* True when this thread holds a context for r. */
int		 ml_errctx_has(int r);
/* Forget this thread's context. */
void		 ml_errclear(void);
/*
 * A mark for "did the callee record a context?": take ml_errctx_mark()
 * before a call, and after it fails ml_errctx_since(mark, r) is true only
 * if a context for r was recorded in between (not left over from before).
 * Lets a layer add the object it knows (a reader name) only when the layer
 * below said nothing.
 */
unsigned	 ml_errctx_mark(void);
int		 ml_errctx_since(unsigned mark, int r);

#endif
