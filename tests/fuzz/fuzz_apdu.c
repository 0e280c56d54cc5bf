/*
 * libFuzzer target: the command-APDU codec (chip-applet/apdu.c).
 *
 * Beyond "no crash, no sanitizer report": every accepted input must be
 * described faithfully by the parsed struct apdu, i.e. re-encoding it in
 * the form it was read (short/extended) gives back exactly the input, and
 * apdu_build() of the parsed fields parses back to the same fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ml_rd.h"
#include "ml_wr.h"
#include "apdu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)	do { if (!(cond)) { abort(); } } while (0)

static size_t
reencode(const struct apdu *a, uint8_t *out)
{
	size_t n = 0, nc = ml_rd_left(&a->data);
	uint32_t le = a->ne;

	out[n++] = a->cla;
	out[n++] = a->ins;
	out[n++] = a->p1;
	out[n++] = a->p2;
	if (a->kase == APDU_CASE_3 || a->kase == APDU_CASE_4) {
		if (a->extended) {
			out[n++] = 0;
			out[n++] = (uint8_t)(nc >> 8);
		}
		out[n++] = (uint8_t)nc;
		memcpy(out + n, ml_rd_ptr(&a->data), nc);
		n += nc;
	}
	if (a->kase == APDU_CASE_2 || a->kase == APDU_CASE_4) {
		if (a->extended) {
			if (a->kase == APDU_CASE_2) {
				out[n++] = 0;
			}
			out[n++] = (uint8_t)((le & 0xffff) >> 8);
		}
		out[n++] = (uint8_t)le;
	}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[4 + 3 + 65535 + 3], built[4 + 3 + 65535 + 3];
	struct ml_wr w = ML_WR_FIXED(built, sizeof(built));
	struct apdu a, b;
	size_t nc;

	if (apdu_parse(data, size, &a) != 0) {
		return 0;
	}
	nc = ml_rd_left(&a.data);
	CHECK(ml_rd_valid(&a.data) && a.data.off == 0);
	CHECK(nc == 0 || (a.data.p >= data && a.data.p + nc <= data + size));
	CHECK(a.kase >= APDU_CASE_1 && a.kase <= APDU_CASE_4);
	CHECK((a.kase == APDU_CASE_3 || a.kase == APDU_CASE_4) == (nc > 0));
	CHECK((a.kase == APDU_CASE_2 || a.kase == APDU_CASE_4) == (a.ne > 0));
	CHECK(a.ne <= (a.extended ? 65536u : 256u));
	CHECK(size <= sizeof(out) && reencode(&a, out) == size);
	CHECK(memcmp(out, data, size) == 0);

	CHECK(apdu_build(&w, a.cla, a.ins, a.p1, a.p2, ml_rd_ptr(&a.data), nc,
	    a.ne) == 0);
	CHECK(apdu_parse(w.p, w.len, &b) == 0);
	CHECK(b.cla == a.cla && b.ins == a.ins && b.p1 == a.p1 && b.p2 == a.p2);
	CHECK(b.kase == a.kase && b.ne == a.ne && ml_rd_left(&b.data) == nc);
	CHECK(nc == 0 || memcmp(ml_rd_ptr(&b.data), ml_rd_ptr(&a.data), nc) == 0);
	return 0;
}
