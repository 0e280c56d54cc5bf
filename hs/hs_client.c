/*
 * The client side over a socket: blocking frame I/O with a timeout on
 * every read, the handshake loop, and the channel API of hs_api.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "hs_int.h"
#include "ml_log.h"
#include "ml_wipe.h"

struct hs_chan {
	int		 fd;
	int		 timeout_ms;
	struct hs_rl	 rl;
	struct hs_peer	 peer;
	uint8_t		*cert;
	size_t		 cert_len;
	int		 alert;		/* an ALERT met on the channel (flow B) */
};

static int
wait_fd(int fd, short ev, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int n;

	do {
		n = poll(&p, 1, timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return ML_ERR_IO;
	}
	if (n == 0) {
		return ML_ERR_TIMEOUT;
	}
	return 0;
}

int
hs_io_write_all(int fd, const uint8_t *p, size_t n, int timeout_ms)
{
	ssize_t k;
	int r;

	while (n > 0) {
		k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = wait_fd(fd, POLLOUT, timeout_ms)) != 0) {
				return r;
			}
			continue;
		}
		if (k <= 0) {
			return ML_ERR_IO;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int
read_full(int fd, uint8_t *p, size_t n, int timeout_ms)
{
	uint64_t deadline = hs_now_ms() + (uint64_t)timeout_ms;
	ssize_t k;
	int r;

	while (n > 0) {
		uint64_t now = hs_now_ms();

		if (now >= deadline) {
			return ML_ERR_TIMEOUT;
		}
		if ((r = wait_fd(fd, POLLIN, (int)(deadline - now))) != 0) {
			return r;
		}
		k = recv(fd, p, n, 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN)) {
			continue;
		}
		if (k <= 0) {
			return ML_ERR_IO;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int
hs_io_read_frame(int fd, size_t max, int timeout_ms, uint8_t **ret_body,
    size_t *ret_len)
{
	uint8_t hdr[4], *body = NULL;
	uint32_t n;
	int r = ML_ERR_INTERNAL;

	ML_TRY(read_full(fd, hdr, sizeof(hdr), timeout_ms));
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	ML_ENSURE(n <= max, ML_ERR_TOO_LARGE);
	ML_ENSURE((body = malloc(n ? n : 1)) != NULL, ML_ERR_NOMEM);
	ML_TRY(read_full(fd, body, n, timeout_ms));
	*ret_body = body;
	*ret_len = n;
	body = NULL;
	r = 0;
out:
	free(body);
	return r;
}

int
hs_client_fd(int fd, const struct hs_client_cfg *cfg,
    struct hs_chan **ret_chan, int *ret_alert)
{
	struct hs *hs = NULL;
	struct hs_chan *c = NULL;
	struct ml_wr out = ml_wr_dyn(4 * HS_MAX_HS_MSG);
	uint8_t *msg = NULL;
	size_t len = 0;
	int tmo, r = ML_ERR_INTERNAL;

	ML_ENSURE(cfg != NULL && ret_chan != NULL, ML_ERR_ARG);
	tmo = cfg->timeout_ms > 0 ? cfg->timeout_ms : HS_DEFAULT_TIMEOUT_MS;
	ML_TRY(hs_client_new(cfg, &hs));
	ML_TRY(hs_advance(hs, NULL, 0, &out));
	for (;;) {
		if (out.len > 0) {
			ML_TRY(hs_io_write_all(fd, out.p, out.len, tmo));
			ml_wr_clear(&out);
		}
		if (hs_is_done(hs)) {
			break;
		}
		ML_TRY(hs_io_read_frame(fd, HS_MAX_HS_MSG, tmo, &msg, &len));
		ML_TRY(hs_advance(hs, msg, len, &out));
		free(msg);
		msg = NULL;
	}
	ML_ENSURE((c = calloc(1, sizeof(*c))) != NULL, ML_ERR_NOMEM);
	c->fd = -1;
	c->timeout_ms = tmo;
	ML_TRY(hs_rl_init(&c->rl, hs));
	ML_TRY(hs_peer_cert_copy(hs, &c->cert, &c->cert_len));
	c->peer = *hs_peer(hs);
	c->peer.cert_der = c->cert;
	c->peer.cert_len = c->cert_len;
	c->fd = fd;
	*ret_chan = c;
	c = NULL;
	r = 0;
out:
	if (r != 0 && hs != NULL) {
		ml_info("hs: client handshake failed: %s (%s)", ml_errname(r),
		    hs_alert_name(hs_alert(hs)));
	}
	if (ret_alert != NULL) {
		*ret_alert = hs != NULL ? hs_alert(hs) : HS_ALERT_INTERNAL;
	}
	free(msg);
	ml_wr_free(&out);
	hs_free(hs);
	if (c != NULL) {
		c->fd = -1;
		hs_chan_close(c);
	}
	return r;
}

int
hs_connect(const char *host, const char *port, const struct hs_client_cfg *cfg,
    struct hs_chan **ret_chan, int *ret_alert)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	int fd = -1, one = 1, gai, err = 0, r = ML_ERR_IO;

	if (ret_alert != NULL) {
		*ret_alert = HS_ALERT_NONE;
	}
	if ((gai = getaddrinfo(host, port, &hints, &res)) != 0) {
		return ml_errf(ML_ERR_IO, "cannot resolve %s port %s: %s", host,
		    port, gai == EAI_SYSTEM ? strerror(errno) :
		    gai_strerror(gai));
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol)) < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			break;
		}
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		/* the last address's reason: "Connection refused", ... */
		errno = err;
		return ml_errf_sys(ML_ERR_IO, "cannot connect to %s port %s",
		    host, port);
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((r = hs_client_fd(fd, cfg, ret_chan, ret_alert)) != 0) {
		close(fd);
	}
	return r;
}

int
hs_chan_send(struct hs_chan *c, uint8_t type, const void *payload,
    size_t len)
{
	struct ml_wr w = ml_wr_dyn(HS_MAX_FRAME + 4);
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(c != NULL && (payload != NULL || len == 0), ML_ERR_ARG);
	ML_TRY(hs_rl_seal(&c->rl, type, payload, len, &w));
	ML_TRY(hs_io_write_all(c->fd, w.p, w.len, c->timeout_ms));
	r = 0;
out:
	ml_wr_free(&w);
	return r;
}

int
hs_chan_recv(struct hs_chan *c, uint8_t *ret_type, uint8_t *buf, size_t cap,
    size_t *ret_len, int timeout_ms)
{
	uint8_t *body = NULL;
	size_t len = 0;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(c != NULL && ret_type != NULL && ret_len != NULL, ML_ERR_ARG);
	ML_ENSURE(!c->rl.dead, ML_ERR_STATE);
	/* waiting for the first byte may time out harmlessly */
	if ((r = wait_fd(c->fd, POLLIN,
	    timeout_ms < 0 ? c->timeout_ms : timeout_ms)) != 0) {
		return r;
	}
	if ((r = hs_io_read_frame(c->fd, HS_MAX_FRAME, c->timeout_ms, &body,
	    &len)) != 0) {
		c->rl.dead = true;
		goto out;
	}
	/* Flow B ends with the client's message: a server that refuses it
	 * answers with an ALERT frame (2 bytes; a record is >= 25). */
	if (len == 2 && body[0] == HS_ALERT) {
		c->alert = body[1];
		c->rl.dead = true;
		r = ML_ERR_REJECTED;
		goto out;
	}
	ML_TRY(hs_rl_open(&c->rl, body, len, ret_type, buf, cap, ret_len));
	r = 0;
out:
	ml_freezero(body, len);
	return r;
}

int
hs_chan_call(struct hs_chan *c, uint8_t type, const void *req, size_t req_len,
    uint8_t *ret_type, uint8_t *buf, size_t cap, size_t *ret_len)
{
	int r;

	if ((r = hs_chan_send(c, type, req, req_len)) != 0) {
		return r;
	}
	return hs_chan_recv(c, ret_type, buf, cap, ret_len, -1);
}

int
hs_chan_alert(const struct hs_chan *c)
{
	return c->alert;
}

const struct hs_peer *
hs_chan_peer(const struct hs_chan *c)
{
	return &c->peer;
}

void
hs_chan_close(struct hs_chan *c)
{
	if (c == NULL) {
		return;
	}
	if (c->fd >= 0) {
		if (!c->rl.dead) {
			(void)!hs_chan_send(c, HS_REC_CLOSE, NULL, 0);
		}
		close(c->fd);
	}
	hs_rl_wipe(&c->rl);
	ml_freezero(c->cert, c->cert_len);
	ml_freezero(c, sizeof(*c));
}
