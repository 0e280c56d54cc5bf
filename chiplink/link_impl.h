/*
 * Chip link internals: the table each transport fills.  chiplink.c picks a
 * transport by the spec's prefix ("inproc:", "pcsc:") and forwards every
 * public call to it.  Not an API outside chiplink/.
 */
#ifndef LINK_IMPL_H
#define LINK_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "chiplink.h"

/*
 * Contracts, for every transport:
 *
 * open		arg is the spec after the prefix (never NULL; may be "").
 *		Returns 0 and the transport's state in *ret_state, or
 *		ML_ERR_*; *ret_state untouched on failure.
 * close	NULL-safe; no other call may be running on the state.
 * nslots	fixed for the life of the state.
 * slot_info	refreshes presence; ML_ERR_ARG for slot >= nslots.
 * transmit	as chiplink_transmit(): ML_ERR_REMOVED when no chip is
 *		present or generation (non-zero) is not the chip's;
 *		*ret_len untouched on failure.  Takes the slot lock itself.
 * lock/unlock	a recursive per-thread section: transmit inside a held
 *		section does not deadlock.  Out-of-range slots are ignored.
 * wait		as chiplink_wait(): 0 and the slot whose presence changed,
 *		ML_ERR_TIMEOUT, or an error.
 * feed		NULL when the transport has no notion of feeding chips
 *		(chiplink.c then answers ML_ERR_UNSUPPORTED).
 */
struct chiplink_ops {
	const char	*name;
	int		(*open)(const char *arg, void **ret_state);
	void		(*close)(void *state);
	size_t		(*nslots)(void *state);
	int		(*slot_info)(void *state, size_t slot,
			    struct chiplink_slot_info *ret);
	int		(*transmit)(void *state, size_t slot,
			    uint64_t generation, const uint8_t *cmd,
			    size_t cmd_len, uint8_t *resp, size_t resp_cap,
			    size_t *ret_len);
	void		(*lock)(void *state, size_t slot);
	void		(*unlock)(void *state, size_t slot);
	int		(*wait)(void *state, int timeout_ms, size_t *ret_slot);
	int		(*feed)(void *state, size_t slot,
			    const char *image_path);	/* NULL if unsupported */
};

extern const struct chiplink_ops chiplink_pcsc_ops;
extern const struct chiplink_ops chiplink_inproc_ops;

#endif
