/*
 * mintline-station reader: the long-running reader host (ID-1, ID-6,
 * ID-9, ID-11, ID-12).  It watches the card slot, pre-reads each card that
 * arrives into the reader secure chip, clears the chip's ID cache after the
 * idle time with no card, and answers commands, one per line, from stdin
 * or (--socket PATH) a local UNIX socket:
 *
 *	read	read the card in the field; prints the information (text, or
 *		one JSON line with --json), then "ok chip" (answered by the
 *		secure chip, ID-11) or "ok server", or "error NAME: text"
 *	forget	clear the ID cache and destroy the random key now -> "ok"
 *	status	"card present|absent"
 *	quit	end (the socket client only: its connection)
 *
 * SIGINT/SIGTERM or end of stdin: CACHE CLEAR 0 before exit (ID-12).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ml_err.h"
#include "ml_log.h"
#include "ml_wipe.h"

#include "cmd_idread.h"

#define RD_POLL_MS	50	/* card slot polling and idle check */
#define RD_LINE_MAX	256

static volatile sig_atomic_t rd_stop;

/* The socket client's stdio buffer is ours, so that plaintext ID data
 * written to it is wiped once sent (a libc buffer would be freed with it
 * at fclose(); found by tests/integration/test-secrets.sh). */
static char rd_obuf[BUFSIZ];

static void
rd_on_signal(int sig)
{
	rd_stop = 1;
}

struct rd_client {
	int	 fd;
	char	 buf[RD_LINE_MAX];
	size_t	 len;
};

/* Run one command line; output to out.  Returns 1 for quit. */
static int
rd_command(struct st_idr *s, const char *line, FILE *out)
{
	struct idr_read_info ri;
	struct chiplink_slot_info si;
	int r;

	if (strcmp(line, "read") == 0) {
		if ((r = st_idr_read(s, out, &ri)) == 0) {
			fprintf(out, "ok %s\n", ri.from_cache ? "chip" :
			    "server");
		} else {
			fprintf(out, "error %s: %s\n", ml_errname(r),
			    st_idr_explain(r));
		}
	} else if (strcmp(line, "forget") == 0) {
		r = idr_reader_forget(st_idr_reader(s));
		fprintf(out, r == 0 ? "ok\n" : "error %s\n", ml_errname(r));
	} else if (strcmp(line, "status") == 0) {
		r = chiplink_slot_info(st_idr_link(s),
		    st_idr_options(s)->rc.card_slot, &si);
		fprintf(out, "card %s\n", r == 0 && si.present ? "present" :
		    "absent");
	} else if (strcmp(line, "quit") == 0) {
		return 1;
	} else if (line[0] != '\0') {
		fprintf(out, "error ML_ERR_ARG: unknown command (read, forget, "
		    "status, quit)\n");
	}
	fflush(out);
	return 0;
}

/* Take what fd has; run each complete line.  Returns -1 at EOF/quit. */
static int
rd_feed(struct st_idr *s, struct rd_client *c, FILE *out)
{
	ssize_t n;
	char *nl;

	n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
		return 0;
	}
	if (n <= 0) {
		return -1;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	while ((nl = strchr(c->buf, '\n')) != NULL) {
		*nl = '\0';
		if (nl > c->buf && nl[-1] == '\r') {
			nl[-1] = '\0';
		}
		if (rd_command(s, c->buf, out) != 0) {
			return -1;
		}
		c->len -= (size_t)(nl + 1 - c->buf);
		memmove(c->buf, nl + 1, c->len + 1);
	}
	if (c->len == sizeof(c->buf) - 1) {	/* an over-long line */
		fprintf(out, "error ML_ERR_TOO_LARGE: line too long\n");
		fflush(out);
		c->len = 0;
	}
	return 0;
}

static int
rd_listen(const char *path, int *ret_fd)
{
	struct sockaddr_un sa;
	int fd = -1;
	int r;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	ML_ENSURE(strlen(path) < sizeof(sa.sun_path), ML_ERR_TOO_LARGE);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		r = ml_errf_sys(ML_ERR_IO, "socket %s", path);
		goto out;
	}
	(void)unlink(path);
	/* only this user talks to the reader: personal data comes out */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    chmod(path, 0600) != 0 || listen(fd, 4) != 0) {
		r = ml_errf_sys(ML_ERR_IO, "socket %s", path);
		goto out;
	}
	*ret_fd = fd;
	fd = -1;
	r = 0;
out:
	if (fd >= 0) {
		close(fd);
	}
	return r;
}

int
cmd_reader(const struct st_opts *so, int argc, char **argv)
{
	struct st_idr_opts o;
	struct st_idr *s = NULL;
	struct rd_client cl = { .fd = -1 };
	struct sigaction sa;
	struct pollfd pf[2];
	FILE *cout = NULL;
	int lfd = -1, pr, nfds, rc = IDR_EXIT_ERROR;
	int r;

	if ((pr = st_idr_parse("reader", argc, argv, &o)) != 0) {
		return pr < 0 ? IDR_EXIT_OK : pr;
	}
	if (o.verbose) {
		ml_log_set_level(ML_LOG_INFO);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = rd_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((r = st_idr_open(&o, &s)) != 0) {
		fprintf(stderr, "mintline-station reader: %s\n", ml_errmsg(r));
		goto out;
	}
	if (o.socket != NULL) {
		if ((r = rd_listen(o.socket, &lfd)) != 0) {
			fprintf(stderr, "mintline-station reader: %s\n",
			    ml_errmsg(r));
			goto out;
		}
	} else {
		cl.fd = STDIN_FILENO;
	}
	ml_info("reader: ready");
	while (!rd_stop) {
		/*
		 *= REQ ID-6 (pre-read): on arrival, before any command
		 *= REQ ID-9 (cache expiry): and the idle clock
		 */
		if ((r = idr_reader_tick(st_idr_reader(s))) != 0) {
			ml_warn("reader: card slot: %s", ml_errmsg(r));
		}
		nfds = 0;
		if (lfd >= 0 && cl.fd < 0) {
			pf[nfds].fd = lfd;
			pf[nfds++].events = POLLIN;
		}
		if (cl.fd >= 0) {
			pf[nfds].fd = cl.fd;
			pf[nfds++].events = POLLIN;
		}
		if (poll(pf, (nfds_t)nfds, RD_POLL_MS) <= 0) {
			continue;
		}
		if (lfd >= 0 && cl.fd < 0 && (pf[0].revents & POLLIN)) {
			cl.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			cl.len = 0;
			if (cl.fd >= 0 &&
			    (cout = fdopen(dup(cl.fd), "w")) == NULL) {
				close(cl.fd);
				cl.fd = -1;
			}
			if (cout != NULL) {
				(void)setvbuf(cout, rd_obuf, _IOFBF,
				    sizeof(rd_obuf));
			}
			continue;
		}
		if (cl.fd >= 0 && (pf[nfds - 1].revents & (POLLIN | POLLHUP))) {
			pr = rd_feed(s, &cl, lfd >= 0 ? cout : stdout);
			if (lfd >= 0) {
				/* rd_feed flushed: the buffer is empty */
				ml_wipe(rd_obuf, sizeof(rd_obuf));
			}
			if (pr < 0) {
				if (lfd < 0) {
					break;		/* end of stdin */
				}
				fclose(cout);
				cout = NULL;
				ml_wipe(rd_obuf, sizeof(rd_obuf));
				close(cl.fd);
				cl.fd = -1;
			}
		}
	}
	rc = IDR_EXIT_OK;
out:
	if (cout != NULL) {
		fclose(cout);
		ml_wipe(rd_obuf, sizeof(rd_obuf));
	}
	if (lfd >= 0) {
		if (cl.fd >= 0) {
			close(cl.fd);
		}
		close(lfd);
		(void)unlink(o.socket);
	}
	st_idr_close(s);		/* ID-12: CACHE CLEAR 0 before exit */
	return rc;
}
