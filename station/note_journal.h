/*
 * The station's issuance journal: what makes a re-run of a batch resume
 * without issuing a note twice.  SQLite, WAL, synchronous=FULL: every
 * entry is on disk before the step it guards.
 *
 * One row per note id:
 *   INTENT  (note, chip) recorded before AUTHORIZE WRITE: the note may be
 *           on that chip from here on;
 *   ACKED   the server acknowledged the registration (final);
 *   REFUSED the server refused the upload (final; reason kept);
 *   REJECTED the chip answered reject-write: nothing was written (the note
 *           may be issued again on a re-run).
 * The crash-safety argument is in docs/issuance.md.
 */
#ifndef ST_NOTE_JOURNAL_H
#define ST_NOTE_JOURNAL_H

#include <stdint.h>

#include "ml_err.h"

enum journal_state {
	J_NONE		= 0,
	J_INTENT	= 1,
	J_ACKED		= 2,
	J_REFUSED	= 3,
	J_REJECTED	= 4,
};

struct note_journal;

/*
 * Open (create) the journal and lock it (PATH.lock): ML_ERR_EXISTS when
 * another station has it open.
 */
ML_MUST_CHECK int note_journal_open(const char *path,
    struct note_journal **ret);
void		 note_journal_close(struct note_journal *j);

/* Call fn for every row (at start-up, to build the resume plan). */
ML_MUST_CHECK int note_journal_scan(struct note_journal *j,
    void (*fn)(void *ctx, const char *note_id, const char *chip_serial,
    int state), void *ctx);

ML_MUST_CHECK int note_journal_intent(struct note_journal *j,
    const char *note_id, const char *chip_serial);
ML_MUST_CHECK int note_journal_done(struct note_journal *j,
    const char *note_id, int state, uint64_t reg_id, int reason);

#endif
