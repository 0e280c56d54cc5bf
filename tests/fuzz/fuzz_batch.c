/*
 * libFuzzer harness: the issuance batch parser (station/batch.c) and the
 * feature information parser (note/feature.c), both fed untrusted
 * bytes (a printing line's CSV; a chip's or an upload's record).
 *
 * Invariants checked beyond "no crash, no sanitizer report": every note
 * kept is a valid note id; line numbers strictly increase; every line is
 * either a note, an error or skipped; no note id twice.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "feature.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct batch b = { 0 };
	struct note_id id;
	size_t i, j;

	if (batch_parse_buf(&b, data, size) == 0) {
		if (b.n + b.nerr > b.lines) {
			abort();
		}
		for (i = 0; i < b.n; i++) {
			const struct note_id *v = &b.v[i].id;

			if (note_id_set(v->prefix, strlen(v->prefix), v->serial,
			    strlen(v->serial), &id) != 0) {
				abort();
			}
			if (i > 0 && b.v[i].lineno <= b.v[i - 1].lineno) {
				abort();
			}
			for (j = 0; j < i && b.n < 64; j++) {
				if (strcmp(b.v[j].id.prefix, v->prefix) == 0 &&
				    strcmp(b.v[j].id.serial, v->serial) == 0) {
					abort();
				}
			}
		}
	}
	batch_clear(&b);
	if (feature_parse(data, size, &id) == 0 &&
	    note_id_set(id.prefix, strlen(id.prefix), id.serial,
	    strlen(id.serial), &id) != 0) {
		abort();
	}
	return 0;
}
