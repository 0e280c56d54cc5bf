/*
 * libFuzzer target: the chip state parser (chip-applet/chip_state.c),
 * which reads a store payload.  A payload passed the store's MAC, but the
 * MAC key sits beside the image, so it is untrusted input all the same.
 *
 * Checks beyond the sanitizers: an accepted payload serializes, and
 * serialize(parse(serialize(st))) is byte-for-byte serialize(st), i.e. the
 * parser and the writer agree on every field they accept; and the state
 * respects the limits the rest of the card OS relies on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ml_err.h"
#include "ml_wr.h"
#include "chip_int.h"
#include "chip_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)	do { if (!(cond)) { abort(); } } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chip_state st, st2;
	struct ml_wr w1 = ml_wr_dyn(4 * STORE_MAX_PAYLOAD);
	struct ml_wr w2 = ml_wr_dyn(4 * STORE_MAX_PAYLOAD);
	size_t i;

	if (size > STORE_MAX_PAYLOAD) {
		return 0;
	}
	if (chip_state_parse(data, size, &st) != 0) {
		return 0;
	}
	CHECK(st.kind >= CHIP_KIND_READER && st.kind <= CHIP_KIND_SAM);
	CHECK(strlen(st.serial) <= CHIP_SERIAL_LEN && st.serial[0] != '\0');
	CHECK(strlen(st.label) <= LABEL_MAX_LEN);
	CHECK(st.nobjs <= OBJ_MAX_COUNT && st.nissuers <= NOTE_MAX_ISSUERS);
	CHECK(st.user_pin.tries_left <= st.user_pin.max_tries);
	CHECK(st.so_pin.tries_left <= st.so_pin.max_tries);
	CHECK(st.feature_len <= NOTE_MAX_FEATURE);
	CHECK(st.card_config_len <= CACHE_MAX_CONFIG);
	CHECK(st.card_data_len <= IDCARD_MAX_DATA);
	for (i = 0; i < st.nobjs; i++) {
		CHECK(st.objs[i].attrs != NULL);
		CHECK(st.objs[i].attrs_len <= OBJ_MAX_ATTRS);
		CHECK(st.objs[i].cls <= OBJ_CLASS_PRIVKEY);
	}

	CHECK(chip_state_serialize(&st, &w1) == 0);
	CHECK(chip_state_parse(w1.p, w1.len, &st2) == 0);
	CHECK(chip_state_serialize(&st2, &w2) == 0);
	CHECK(w1.len == w2.len && memcmp(w1.p, w2.p, w1.len) == 0);

	chip_state_clear(&st);
	chip_state_clear(&st2);
	ml_wr_free(&w1);
	ml_wr_free(&w2);
	return 0;
}
