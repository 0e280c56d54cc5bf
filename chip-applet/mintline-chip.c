/*
 * mintline-chip: run one chip image as a virtual card behind pcscd, through
 * vsmartcard's vpcd reader driver.
 *
 * vpcd listens on one TCP port per reader slot and the virtual card connects
 * to it as a client.  Every message, in both directions, is a 2-byte
 * big-endian length followed by that many bytes (vsmartcard,
 * virtualsmartcard/src/vpcd/vpcd.c: sendToVICC / recvFromVICC).  What vpcd
 * sends:
 *
 *	length	first byte	meaning			we answer
 *	1	00		power off		nothing (chip_reset)
 *	1	01		power on		nothing (chip_reset)
 *	1	02		warm reset		nothing (chip_reset)
 *	1	04		get ATR			the ATR (chip_atr)
 *	1	other		unknown control		nothing (logged)
 *	>= 4	CLA		command APDU		data || SW1 SW2
 *
 * vpcd asks for the ATR every time pcscd polls the slot for presence, so an
 * idle card sees a steady trickle of 04 messages.  When vpcd closes the
 * connection (the card was "ejected", or pcscd stopped) we reset the chip and
 * connect again until told to stop.  The image stays open for the life of
 * the process; a SIGKILL at any point leaves the store as the chip's
 * tear-safe commit left it.
 *
 * Limits: the wire length is 16 bits, so a command or a response is at most
 * 65535 bytes.  The chip is given a 65535-byte response buffer and chains
 * longer answers with 61xx / GET RESPONSE (chip.h); a command longer than
 * 65535 bytes cannot reach us (vpcd refuses to send it and ejects the card).
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chip.h"
#include "chip_latency.h"
#include "ml_err.h"
#include "ml_log.h"
#include "ml_parse.h"
#include "ml_rd.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "sw.h"

#define VPCD_CTRL_LEN		1
#define VPCD_CTRL_OFF		0x00
#define VPCD_CTRL_ON		0x01
#define VPCD_CTRL_RESET		0x02
#define VPCD_CTRL_ATR		0x04

#define VPCD_HDR_LEN		2
#define VPCD_MAX_MSG		0xFFFF	/* 16-bit length prefix */

#define MC_POLL_MS		500	/* how often a blocked read checks for a signal */
#define MC_BACKOFF_MIN_MS	100
#define MC_BACKOFF_MAX_MS	1000

struct mc_opts {
	const char	*host;
	const char	*port;
	const char	*image;
	const char	*latency;	/* profile spec, NULL: instant */
	int		 verbose;
};

/* One running card: the chip and its two message buffers. */
struct mc {
	struct chip	*chip;
	struct chip_latency *lat;	/* --latency; NULL: instant */
	uint8_t		 in[VPCD_MAX_MSG];
	uint8_t		 out[VPCD_HDR_LEN + VPCD_MAX_MSG];
	unsigned long	 napdu;
};

_Static_assert(sizeof(((struct mc *)0)->in) >= VPCD_MAX_MSG,
    "a whole vpcd message must fit m->in");

static volatile sig_atomic_t mc_stop;

static void
mc_on_signal(int sig)
{
	(void)sig;
	mc_stop = 1;
}

static void
mc_usage(FILE *f)
{
	fprintf(f,
	    "usage: mintline-chip [--host ADDR] --port N [--latency PROFILE]\n"
	    "                     [--verbose] IMAGE\n"
	    "\n"
	    "Run the chip image IMAGE as a virtual card in the vpcd reader slot\n"
	    "listening on ADDR:N (default ADDR 127.0.0.1).\n"
	    "\n"
	    "  -H, --host ADDR   vpcd host (default 127.0.0.1)\n"
	    "  -p, --port N      vpcd slot port (required)\n"
	    "  -L, --latency PROFILE\n"
	    "                    answer as slowly as a real chip: 'default' (a\n"
	    "                    contactless secure element) or a profile file\n"
	    "  -v, --verbose     log more (twice: per-APDU debug lines)\n"
	    "  -h, --help        this text\n");
}

/*
 * Parse the command line into *ret.  Returns 0, 1 for --help (print and
 * exit 0), or ML_ERR_ARG after printing why.
 */
static int
mc_parse_args(int argc, char **argv, struct mc_opts *ret)
{
	static const struct option longopts[] = {
		{ "host",	required_argument,	NULL, 'H' },
		{ "port",	required_argument,	NULL, 'p' },
		{ "latency",	required_argument,	NULL, 'L' },
		{ "verbose",	no_argument,		NULL, 'v' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 },
	};
	struct mc_opts o = { .host = "127.0.0.1" };
	unsigned port;
	int ch;

	while ((ch = getopt_long(argc, argv, "H:p:L:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H':
			o.host = optarg;
			break;
		case 'p':
			if (ml_parse_uint(optarg, "--port", 1, 65535,
			    &port) != 0) {
				fprintf(stderr, "mintline-chip: bad port: %s\n",
				    optarg);
				return ML_ERR_ARG;
			}
			o.port = optarg;
			break;
		case 'L':
			o.latency = optarg;
			break;
		case 'v':
			o.verbose++;
			break;
		case 'h':
			mc_usage(stdout);
			return 1;
		default:
			mc_usage(stderr);
			return ML_ERR_ARG;
		}
	}
	if (o.port == NULL || argc - optind != 1) {
		mc_usage(stderr);
		return ML_ERR_ARG;
	}
	o.image = argv[optind];
	*ret = o;
	return 0;
}

static void
mc_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
	    .tv_nsec = (ms % 1000) * 1000000L };

	/* A signal cuts the sleep short; the caller checks mc_stop. */
	(void)nanosleep(&ts, NULL);
}

/*
 * Connect to vpcd at host:port.  Returns a connected socket, or -1 (errno
 * of the last attempt left in place for the caller's log).
 */
static int
mc_connect(const struct mc_opts *o)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	int fd = -1, one = 1, gai;

	if ((gai = getaddrinfo(o->host, o->port, &hints, &res)) != 0) {
		ml_err("cannot resolve %s: %s", o->host, gai_strerror(gai));
		errno = EINVAL;
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1) {
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd != -1) {
		/* One small message each way per exchange: no Nagle delay. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	}
	return fd;
}

/*
 * Read exactly n bytes.  Returns 0, ML_ERR_REMOVED when vpcd closed the
 * connection, ML_ERR_IO on a socket error, ML_ERR_STATE when a stop signal
 * arrived.
 */
static int
mc_read_full(int fd, uint8_t *buf, size_t n)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t k;
	int pr, one = 1;

	while (got < n) {
		if (mc_stop) {
			return ML_ERR_STATE;
		}
		/*
		 * vpcd writes the length and the body with two send()s, and
		 * its socket has Nagle on: the body waits for our ACK of the
		 * length, which delayed ACK holds back ~40 ms.  Ask for quick
		 * ACKs again before every read (Linux drops the mode on its
		 * own); without this every APDU costs 40 ms.
		 */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one,
		    sizeof(one));
		pr = poll(&pfd, 1, MC_POLL_MS);
		if (pr == -1 && errno != EINTR) {
			ml_warn("poll: %s", strerror(errno));
			return ML_ERR_IO;
		}
		if (pr <= 0) {
			continue;
		}
		k = recv(fd, buf + got, n - got, 0);
		if (k == 0) {
			return ML_ERR_REMOVED;
		}
		if (k == -1) {
			if (errno == EINTR || errno == EAGAIN) {
				continue;
			}
			ml_info("recv: %s", strerror(errno));
			return ML_ERR_IO;
		}
		got += (size_t)k;
	}
	return 0;
}

static int
mc_write_full(int fd, const uint8_t *buf, size_t n)
{
	size_t put = 0;
	ssize_t k;

	while (put < n) {
		k = send(fd, buf + put, n - put, MSG_NOSIGNAL);
		if (k == -1) {
			if (errno == EINTR) {
				continue;
			}
			ml_info("send: %s", strerror(errno));
			return ML_ERR_IO;
		}
		put += (size_t)k;
	}
	return 0;
}

/* Receive one vpcd message into m->in; its length in *ret_len. */
static int
mc_recv_msg(struct mc *m, int fd, size_t *ret_len)
{
	uint8_t hdr[VPCD_HDR_LEN];
	struct ml_rd rd = ML_RD_INIT(hdr, sizeof(hdr));
	uint16_t len;
	int r = ML_ERR_INTERNAL;

	ML_TRY(mc_read_full(fd, hdr, sizeof(hdr)));
	ML_TRY(ml_rd_u16be(&rd, &len));
	ML_TRY(ml_rd_end(&rd));
	/* len <= VPCD_MAX_MSG by its width: m->in always has room. */
	ML_TRY(mc_read_full(fd, m->in, len));
	*ret_len = len;
	r = 0;
out:
	return r;
}

/* Frame the first body_len bytes after the header in m->out and send. */
static int
mc_send_msg(struct mc *m, int fd, size_t body_len)
{
	struct ml_wr hdr = ML_WR_FIXED(m->out, VPCD_HDR_LEN);
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(body_len <= VPCD_MAX_MSG, ML_ERR_TOO_LARGE);
	ML_TRY(ml_wr_u16be(&hdr, (uint16_t)body_len));
	ML_TRY(mc_write_full(fd, m->out, VPCD_HDR_LEN + body_len));
	r = 0;
out:
	return r;
}

/* A status word alone as the answer. */
static size_t
mc_put_sw(struct mc *m, uint16_t sw)
{
	m->out[VPCD_HDR_LEN] = (uint8_t)(sw >> 8);
	m->out[VPCD_HDR_LEN + 1] = (uint8_t)sw;
	return 2;
}

/*
 * One control message.  *ret_len gets the answer's length (0: no answer).
 */
static int
mc_control(struct mc *m, struct ml_rd *msg, size_t *ret_len)
{
	const uint8_t *atr;
	size_t atr_len = 0;
	uint8_t ctrl;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_u8(msg, &ctrl));
	ML_TRY(ml_rd_end(msg));
	*ret_len = 0;
	switch (ctrl) {
	case VPCD_CTRL_OFF:
		/* Power off keeps the image open: only volatile state goes. */
		ml_debug("power off");
		chip_reset(m->chip);
		break;
	case VPCD_CTRL_ON:
		ml_debug("power on");
		chip_reset(m->chip);
		break;
	case VPCD_CTRL_RESET:
		ml_debug("reset");
		chip_reset(m->chip);
		break;
	case VPCD_CTRL_ATR:
		atr = chip_atr(m->chip, &atr_len);
		ML_ENSURE(atr != NULL && atr_len > 0 && atr_len <= VPCD_MAX_MSG,
		    ML_ERR_INTERNAL);
		memcpy(m->out + VPCD_HDR_LEN, atr, atr_len);
		*ret_len = atr_len;
		break;
	default:
		ml_warn("ignoring unknown vpcd control 0x%02x", ctrl);
		break;
	}
	r = 0;
out:
	return r;
}

/*
 * One command APDU through the chip.  A host-side failure inside the chip
 * still gets a status word, so the PC/SC caller sees an answer: 6581 when
 * the store could not be written, 6F00 otherwise.
 */
static int
mc_apdu(struct mc *m, struct ml_rd *msg, size_t *ret_len)
{
	const uint8_t *cmd;
	size_t cmd_len = ml_rd_left(msg);
	size_t resp_len = 0;
	struct timespec t0;
	int r = ML_ERR_INTERNAL;
	int cr;

	chip_latency_start(&t0);
	ML_TRY(ml_rd_bytes(msg, cmd_len, &cmd));
	ML_TRY(ml_rd_end(msg));
	/* Header only: the body may carry a PIN. */
	ml_debug("apdu %02x %02x %02x %02x, %zu bytes", cmd[0], cmd[1],
	    cmd[2], cmd[3], cmd_len);
	cr = chip_transmit(m->chip, cmd, cmd_len, m->out + VPCD_HDR_LEN,
	    VPCD_MAX_MSG, &resp_len);
	m->napdu++;
	if (cr == 0 && (resp_len < 2 || resp_len > VPCD_MAX_MSG)) {
		ml_err("chip answered %zu bytes", resp_len);
		cr = ML_ERR_INTERNAL;
	}
	if (cr != 0) {
		ml_err("chip_transmit: %s", ml_strerror(cr));
		resp_len = mc_put_sw(m, cr == ML_ERR_IO ? SW_MEMORY_FAILURE :
		    SW_UNKNOWN);
	}
	ml_debug("sw %02x%02x, %zu bytes",
	    m->out[VPCD_HDR_LEN + resp_len - 2],
	    m->out[VPCD_HDR_LEN + resp_len - 1], resp_len);
	/* the answer leaves when a real chip would have sent it */
	chip_latency_wait(m->lat, &t0, cmd, cmd_len, resp_len);
	*ret_len = resp_len;
	r = 0;
out:
	return r;
}

/*
 * Answer vpcd on fd until it goes away (ML_ERR_REMOVED / ML_ERR_IO), a stop
 * signal arrives (ML_ERR_STATE) or it breaks the protocol (ML_ERR_FORMAT).
 * Both buffers are wiped after every exchange: commands carry PINs and
 * answers may carry plaintext.
 */
static int
mc_serve(struct mc *m, int fd)
{
	struct ml_rd msg;
	size_t len = 0, ans = 0;
	int r = ML_ERR_INTERNAL;

	for (;;) {
		ML_TRY(mc_recv_msg(m, fd, &len));
		msg = ML_RD_INIT(m->in, len);
		if (len == VPCD_CTRL_LEN) {
			ML_TRY(mc_control(m, &msg, &ans));
		} else if (len >= 4) {
			ML_TRY(mc_apdu(m, &msg, &ans));
		} else {
			/* Not a control code and too short for an APDU. */
			ml_warn("malformed vpcd message (%zu bytes)", len);
			ans = mc_put_sw(m, SW_WRONG_LENGTH);
		}
		if (ans > 0) {
			ML_TRY(mc_send_msg(m, fd, ans));
		}
		ml_wipe(m->in, len);
		ml_wipe(m->out, VPCD_HDR_LEN + ans);
	}
out:
	ml_wipe(m->in, sizeof(m->in));
	ml_wipe(m->out, sizeof(m->out));
	return r;
}

/* Connect, serve, reconnect; until a stop signal.  Returns 0 then. */
static int
mc_run(struct mc *m, const struct mc_opts *o)
{
	long backoff = MC_BACKOFF_MIN_MS;
	bool waiting_logged = false;
	int fd, r;

	while (!mc_stop) {
		if ((fd = mc_connect(o)) == -1) {
			if (!waiting_logged) {
				ml_info("waiting for vpcd at %s:%s (%s)",
				    o->host, o->port, strerror(errno));
				waiting_logged = true;
			}
			mc_sleep_ms(backoff);
			backoff = backoff * 2 > MC_BACKOFF_MAX_MS ?
			    MC_BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		ml_info("connected to vpcd at %s:%s", o->host, o->port);
		backoff = MC_BACKOFF_MIN_MS;
		waiting_logged = false;
		r = mc_serve(m, fd);
		close(fd);
		/* Out of the field: whatever the card was doing is over. */
		chip_reset(m->chip);
		if (r == ML_ERR_STATE) {
			break;
		}
		ml_info("vpcd connection ended (%s); reconnecting",
		    r == ML_ERR_REMOVED ? "closed by vpcd" : ml_strerror(r));
	}
	return 0;
}

static int
mc_install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mc_on_signal;	/* no SA_RESTART: poll/sleep wake up */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGINT, &sa, NULL) == -1) {
		return ML_ERR_INTERNAL;
	}
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1) {
		return ML_ERR_INTERNAL;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct mc_opts o;
	struct mc *m = NULL;
	int r, ex = 1;

	ml_log_set_ident("mintline-chip");
	if ((r = mc_parse_args(argc, argv, &o)) != 0) {
		return r == 1 ? 0 : 2;
	}
	if (o.verbose > 0) {
		ml_log_set_level(o.verbose > 1 ? ML_LOG_DEBUG : ML_LOG_INFO);
	}
	if ((r = mc_install_signals()) != 0) {
		ml_err("cannot install signal handlers");
		goto out;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		ml_err("out of memory");
		goto out;
	}
	if ((r = chip_open(o.image, &m->chip)) != 0) {
		ml_err("cannot open chip image %s: %s", o.image,
		    ml_strerror(r));
		goto out;
	}
	if (o.latency != NULL && (r = chip_latency_load(o.latency,
	    &m->lat)) != 0) {
		ml_err("--latency: %s", ml_errmsg(r));
		goto out;
	}
	ml_info("chip %s (%s) from %s", chip_serial(m->chip),
	    chip_kind_name(chip_kind(m->chip)), o.image);
	if ((r = mc_run(m, &o)) != 0) {
		goto out;
	}
	ml_info("stopping after %lu APDUs", m->napdu);
	ex = 0;
out:
	if (m != NULL) {
		chip_latency_free(m->lat);
		chip_close(m->chip);
		ml_freezero(m, sizeof(*m));
	}
	return ex;
}
