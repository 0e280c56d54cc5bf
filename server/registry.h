/*
 * The server's registry: reader/station serial <-> certificate-number
 * mapping, per-reader risk records and flagged status (ID-3), and (issue 5)
 * note registrations.
 *
 * Back-ends implement struct reg_ops; SQLite (registry_sqlite.c) is the
 * default, PostgreSQL comes later (issue 7).  Callers use the reg_*
 * wrappers only.  Every back-end is thread-safe: workers call it
 * concurrently.
 *
 * Schema changes go into the back-end's migrations list
 * (reg_sqlite_migrations[] in registry_sqlite.c): append a row, never edit
 * an applied one.  To add an operation (e.g. note registration), add a
 * function pointer to struct reg_ops, a wrapper below, and the SQLite
 * implementation; a back-end may leave it NULL (the wrapper then returns
 * ML_ERR_UNSUPPORTED).
 *
 * Functions return 0 or a negative ML_ERR_*; ret_ outputs are untouched on
 * failure.  ML_ERR_NOT_FOUND for a missing row.
 */
#ifndef ML_REGISTRY_H
#define ML_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "hs_api.h"

#define REG_MAX_FACTORY		512	/* factory data, free text */
#define REG_MAX_DETAIL		256	/* event detail, free text */

struct reg_reader {
	char		 serial[HS_MAX_SERIAL + 1];
	char		 certno[HS_MAX_CERTNO + 1];
	enum hs_kind	 kind;
	bool		 flagged;		/* risk control: refuse (ID-5) */
	char		 factory[REG_MAX_FACTORY + 1];	/* ID-3 factory data */
	int64_t		 created;		/* unix seconds */
};

/* Risk-record kinds (ID-3): what happened with a reader. */
enum reg_event {
	REG_EV_READ = 1,	/* an ID card read */
	REG_EV_ERROR = 2,	/* an error it caused or reported */
	REG_EV_REPORT = 3,	/* a report filed about it */
	REG_EV_TRANSACTION = 4,	/* a transaction (e.g. a note issued) */
	REG_EV_HANDSHAKE = 5,	/* a completed handshake */
	REG_EV_REJECT = 6,	/* a refused handshake (alert code in detail) */
};

struct reg;

struct reg_ops {
	const char	*name;		/* "sqlite" */
	void		(*close)(struct reg *r);
	int		(*reader_get)(struct reg *r, const char *serial,
			    struct reg_reader *ret);
	/* Insert or replace the mapping (certificate renewal). */
	int		(*reader_put)(struct reg *r, const struct reg_reader *rd);
	int		(*reader_flag)(struct reg *r, const char *serial,
			    bool flagged);
	int		(*event_add)(struct reg *r, const char *serial,
			    enum reg_event ev, const char *detail);
	/* Number of events of this kind (0 = any) for serial. */
	int		(*event_count)(struct reg *r, const char *serial,
			    enum reg_event ev, uint64_t *ret_n);
};

/* Every back-end's handle starts with this. */
struct reg {
	const struct reg_ops	*ops;
};

/*
 * Open a registry.  target: "sqlite:PATH" or a plain PATH (SQLite; the
 * database is created and migrated; WAL, synchronous=FULL).
 */
ML_MUST_CHECK int reg_open(const char *target, struct reg **ret_reg);
void	reg_close(struct reg *r);			/* NULL-safe */

ML_MUST_CHECK int reg_reader_get(struct reg *r, const char *serial,
    struct reg_reader *ret);
ML_MUST_CHECK int reg_reader_put(struct reg *r, const struct reg_reader *rd);
ML_MUST_CHECK int reg_reader_flag(struct reg *r, const char *serial,
    bool flagged);
ML_MUST_CHECK int reg_event_add(struct reg *r, const char *serial,
    enum reg_event ev, const char *detail);
ML_MUST_CHECK int reg_event_count(struct reg *r, const char *serial,
    enum reg_event ev, uint64_t *ret_n);

/* SQLite back-end (registry_sqlite.c). */
ML_MUST_CHECK int reg_sqlite_open(const char *path, struct reg **ret_reg);

#endif
