/*
 * Issuance record transport (see note_uplink.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ml_wr.h"
#include "note_proto.h"
#include "note_uplink.h"
#include "reg_note.h"

struct note_uplink {
	int		 fd;
	struct reg_note	*local;
};

static int
io_full(int fd, void *p, size_t n, int wr)
{
	uint8_t *b = p;
	ssize_t k;

	while (n > 0) {
		k = wr ? send(fd, b, n, MSG_NOSIGNAL) : read(fd, b, n);
		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k <= 0) {
			return k == 0 ? ML_ERR_REMOVED : ML_ERR_IO;
		}
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

int
note_frame_write(int fd, unsigned type, const uint8_t *p, size_t n)
{
	uint8_t hdr[5] = { (uint8_t)type, (uint8_t)(n >> 24), (uint8_t)(n >> 16),
	    (uint8_t)(n >> 8), (uint8_t)n };
	int r;

	if (n > NOTE_REQ_MAX) {
		return ML_ERR_TOO_LARGE;
	}
	if ((r = io_full(fd, hdr, sizeof(hdr), 1)) != 0) {
		return r == ML_ERR_REMOVED ? ML_ERR_IO : r;
	}
	if (n > 0 && (r = io_full(fd, (void *)p, n, 1)) != 0) {
		return r == ML_ERR_REMOVED ? ML_ERR_IO : r;
	}
	return 0;
}

int
note_frame_read(int fd, unsigned *ret_type, uint8_t *p, size_t cap,
    size_t *ret_len)
{
	uint8_t hdr[5];
	size_t n;
	int r;

	if ((r = io_full(fd, hdr, 1, 0)) != 0) {
		return r;
	}
	if ((r = io_full(fd, hdr + 1, 4, 0)) != 0) {
		return ML_ERR_IO;
	}
	n = (size_t)hdr[1] << 24 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 8 |
	    hdr[4];
	if (n > cap || n > NOTE_REQ_MAX) {
		return ML_ERR_TOO_LARGE;
	}
	if (n > 0 && (r = io_full(fd, p, n, 0)) != 0) {
		return ML_ERR_IO;
	}
	*ret_type = hdr[0];
	*ret_len = n;
	return 0;
}

int
note_uplink_open(const char *spec, struct note_uplink **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct note_uplink *u;
	int fd;

	if (strncmp(spec, "unix:", 5) != 0) {
		return ML_ERR_UNSUPPORTED;	/* "hs:" when hs/ lands */
	}
	if (strlen(spec + 5) >= sizeof(sa.sun_path)) {
		return ML_ERR_TOO_LARGE;
	}
	memcpy(sa.sun_path, spec + 5, strlen(spec + 5) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		return ML_ERR_IO;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return ML_ERR_IO;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		close(fd);
		return ML_ERR_NOMEM;
	}
	u->fd = fd;
	*ret = u;
	return 0;
}

int
note_uplink_local(struct reg_note *rn, struct note_uplink **ret)
{
	struct note_uplink *u;

	if ((u = calloc(1, sizeof(*u))) == NULL) {
		return ML_ERR_NOMEM;
	}
	u->fd = -1;
	u->local = rn;
	*ret = u;
	return 0;
}

void
note_uplink_close(struct note_uplink *u)
{
	if (u == NULL) {
		return;
	}
	if (u->fd >= 0) {
		close(u->fd);
	}
	free(u);
}

int
note_uplink_call(struct note_uplink *u, unsigned type, const uint8_t *req,
    size_t len, uint8_t *resp, size_t cap, size_t *ret_len)
{
	unsigned rtype;
	int r;

	if (u->local != NULL) {
		struct ml_wr w = ML_WR_FIXED(resp, cap);

		if ((r = reg_note_handle(u->local, type, req, len, &w)) != 0) {
			return r;
		}
		*ret_len = w.len;
		return 0;
	}
	if ((r = note_frame_write(u->fd, type, req, len)) != 0) {
		return r;
	}
	if ((r = note_frame_read(u->fd, &rtype, resp, cap, ret_len)) != 0) {
		return r == ML_ERR_REMOVED ? ML_ERR_IO : r;
	}
	return rtype == NOTE_REC_REPLY ? 0 : ML_ERR_FORMAT;
}
