/*
 * note_db (note_db.h) on a registry back-end that implements the note
 * operations (registry.h; today PostgreSQL), so that servers sharing one
 * database register each note once (BN-7, BN-8).
 */
#ifndef NOTE_DB_REG_H
#define NOTE_DB_REG_H

#include "note_db.h"
#include "registry.h"

/*
 * A note_db handle whose calls go to reg (borrowed: keep it open until
 * note_db_close()).  ML_ERR_UNSUPPORTED when reg has no note operations
 * (SQLite: use note_db_open() on a file), ML_ERR_IO when it does not
 * answer.
 */
ML_MUST_CHECK int note_db_reg_open(struct reg *reg, struct note_db **ret);

#endif
