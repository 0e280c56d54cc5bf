/*
 * Host-side command helper over a chip link: SELECT, one exchange with
 * GET RESPONSE chaining, chip info.  Used by the station, the demo, tools
 * and tests, so that no host code assembles APDUs or splits responses by
 * hand.
 */
#ifndef CHIPCMD_H
#define CHIPCMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"
#include "chiplink.h"

struct chipcmd {
	struct chiplink	*link;
	size_t		 slot;
	uint64_t	 generation;	/* the chip this session talks to */
	/*
	 * Optional (NULL: none): the PIN the caller logged in with and its
	 * reference (PIN_USER, PIN_SO).  A chip shared with other clients
	 * may be reset or logged out under us (OP-3); chipcmd_send() then
	 * selects the applet again, repeats the VERIFY and the command once.
	 */
	const uint8_t	*pin;
	size_t		 pin_len;
	uint8_t		 pin_ref;
};

struct chip_info {
	uint8_t		 kind;
	char		 serial[17];
	char		 label[33];
	uint16_t	 state;		/* INFO_F_* */
	uint8_t		 user_tries, so_tries, max_tries;
	uint32_t	 free_bytes;
	uint8_t		 login;
	uint8_t		 mode;
};

/*
 * Bind to the chip now in slot and SELECT the mintline applet (any kind).
 * ML_ERR_REMOVED when the slot is empty; ML_ERR_NOT_FOUND when the chip
 * does not answer our AID.
 */
ML_MUST_CHECK int chipcmd_begin(struct chipcmd *cc, struct chiplink *l,
    size_t slot);

/*
 * One command; response data (after GET RESPONSE chaining) into out (cap
 * bytes), the final status word into *ret_sw.  Returns 0 whatever the SW,
 * or ML_ERR_REMOVED / ML_ERR_IO / ML_ERR_TOO_LARGE for transport trouble.
 * After a reset by another client (ML_ERR_RESET from the link) the applet
 * is selected again and, with cc->pin, the login restored, then the
 * command is sent once more; so is a command refused with 6982 although
 * cc->pin is set (another client logged the shared chip out).
 */
ML_MUST_CHECK int chipcmd_send(struct chipcmd *cc, uint8_t cla, uint8_t ins,
    uint8_t p1, uint8_t p2, const void *data, size_t data_len, uint32_t ne,
    uint8_t *out, size_t cap, size_t *ret_len, uint16_t *ret_sw);

/* As chipcmd_send, but any SW other than 9000 becomes chipcmd_sw_err(). */
ML_MUST_CHECK int chipcmd_ok(struct chipcmd *cc, uint8_t cla, uint8_t ins,
    uint8_t p1, uint8_t p2, const void *data, size_t data_len, uint32_t ne,
    uint8_t *out, size_t cap, size_t *ret_len);

/* GET DATA 01, parsed. */
ML_MUST_CHECK int chipcmd_info(struct chipcmd *cc, struct chip_info *ret);

/*
 * The one SW -> ML_ERR translation on the host side.  A failure records an
 * error context with the SW's meaning (ml_err.h): "PIN incorrect, 2 tries
 * left (SW 63C2)"; chipcmd_ok() puts the position's name before it.
 */
int		 chipcmd_sw_err(uint16_t sw);
/* What an SW means, per ISO/IEC 7816-4 and chip_proto.h (static text). */
const char	*chipcmd_sw_text(uint16_t sw);

#endif
