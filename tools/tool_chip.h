/*
 * One chip image, talked to through chipcmd (chiplink/chipcmd.h) as a
 * personalisation machine would: the tools that key or personalise a freshly
 * manufactured chip (mintline-mksam, mintline-mkidcard) send their commands
 * here, so that they share the one APDU builder, GET RESPONSE loop and
 * SW-to-error translation of the station instead of each their own.
 *
 * The image is put into position 0 of a one-position in-process line in a
 * private temporary directory ($TMPDIR, else /tmp), removed again by
 * tool_chip_close().
 */
#ifndef TOOL_CHIP_H
#define TOOL_CHIP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "chipcmd.h"
#include "ml_err.h"

struct tool_chip {
	const char	*image;		/* as given to tool_chip_open() */
	char		 serial[17];	/* the chip's, for messages */
	char		 dir[PATH_MAX];	/* the temporary line ("" if none) */
	struct chiplink	*link;
	struct chipcmd	 cc;
};

/*
 * Power the chip image at image and SELECT its mintline applet.  On
 * failure the context names the image and the cause; tool_chip_close() is
 * still to be called (it undoes what was done).
 */
ML_MUST_CHECK int tool_chip_open(struct tool_chip *tc, const char *image);

/*
 * One command without response data; any SW other than 9000 is an error
 * whose context names the image, the chip serial, the INS and the SW's
 * meaning ("a.chip (SAM-0A1B2C3D): INS 74: conditions of use not
 * satisfied (SW 6985)").  The command buffers are wiped (keys pass here).
 */
ML_MUST_CHECK int tool_chip_cmd(struct tool_chip *tc, uint8_t cla,
    uint8_t ins, uint8_t p1, uint8_t p2, const void *data, size_t len);

/* Close the link and remove the temporary line.  NULL-safe, idempotent. */
void		 tool_chip_close(struct tool_chip *tc);

#endif
