#ifndef CHIP_STATE_H
#define CHIP_STATE_H

#include "chip_int.h"

/* Append the serialized state to w. */
ML_MUST_CHECK int chip_state_serialize(const struct chip_state *st,
    struct ml_wr *w);
/* Parse a payload into a fresh *ret_st (untouched on failure). */
ML_MUST_CHECK int chip_state_parse(const uint8_t *p, size_t len,
    struct chip_state *ret_st);
/* Free and wipe everything a state holds. */
void		 chip_state_clear(struct chip_state *st);

#endif
