/*
 * Floors of the real server's shape on this machine (ID-2, ID-4): what a
 * process boundary and a loopback TCP connection cost before any of our
 * code runs.  bench-hs.sh prints them next to the real mintline-server's
 * CPU per handshake and its monitor's CPU per signature, so that the part
 * of those figures that is ours can be told from the part that is the
 * kernel's and the hypervisor's.
 *
 *   bench-floor ipc [-n N] [--gap US]
 *	N request/answer round trips with a child process over a
 *	SOCK_SEQPACKET socketpair, the monitor channel's shape (41-byte
 *	request, 68-byte answer; the child waits in poll, then recv, then
 *	send; the asking side send, poll, recv).  Prints the CPU of each
 *	side per round trip.  --gap: the asking side sleeps US microseconds
 *	before each request, so the answering process wakes from idle each
 *	time, as the monitor does between the handshakes of one client.
 *   bench-floor tcp [-n N] [--handoff]
 *	N loopback TCP connections shaped like a flow A handshake as
 *	mintline-load makes it (29 bytes -> 37, 589 -> 677, a 29-byte close
 *	record, then FIN both ways) against a null server in a child process
 *	that computes nothing.  Without --handoff the null server is one
 *	thread with blocking calls (the cheapest possible); with --handoff
 *	it has the real server's shape: an epoll I/O thread that hands each
 *	whole frame to a worker thread and gets the answer back through an
 *	eventfd.  Prints the null server's CPU per connection.
 *
 * CPU is the child's user + system time (getrusage(RUSAGE_CHILDREN) after
 * it exits), so start-up is included; N large enough makes it negligible.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IPC_REQ		41	/* monitor sign request: type, session, digest */
#define IPC_ANS		68	/* status + signature */

/* flow A as mintline-load makes it: what the client sends, what it gets */
static const size_t tcp_req[3] = { 29, 589, 29 };
static const size_t tcp_ans[3] = { 37, 677, 0 };	/* 0: FIN instead */

static void
die(const char *what)
{
	fprintf(stderr, "bench-floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
tv_us(struct timeval tv)
{
	return (double)tv.tv_sec * 1e6 + (double)tv.tv_usec;
}

static double
self_cpu_us(void)
{
	struct rusage ru;

	(void)getrusage(RUSAGE_SELF, &ru);
	return tv_us(ru.ru_utime) + tv_us(ru.ru_stime);
}

/* Wait for the child; its CPU (user + system) in microseconds. */
static double
child_cpu_us(pid_t pid)
{
	struct rusage ru;
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			die("waitpid");
		}
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "bench-floor: the child failed\n");
		exit(1);
	}
	(void)getrusage(RUSAGE_CHILDREN, &ru);
	return tv_us(ru.ru_utime) + tv_us(ru.ru_stime);
}

/* All n bytes in (out false) or out over a blocking socket. */
static bool
xfer_full(int fd, uint8_t *p, size_t n, bool out)
{
	ssize_t k;

	while (n > 0) {
		k = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k <= 0) {
			return false;
		}
		p += k;
		n -= (size_t)k;
	}
	return true;
}

#define read_full(fd, p, n)	xfer_full((fd), (p), (n), false)
#define write_full(fd, p, n)	xfer_full((fd), (p), (n), true)

/* A frame as the handshake frames it: 4-byte big-endian length, body. */
static void
frame_make(uint8_t *buf, size_t total)
{
	uint32_t be = htonl((uint32_t)(total - 4));

	memset(buf, 0x5a, total);
	memcpy(buf, &be, 4);
}

/* ---- ipc ------------------------------------------------------------ */

static void
ipc_child(int fd)
{
	uint8_t in[256], out[IPC_ANS];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t k;

	memset(out, 0, sizeof(out));
	for (;;) {
		if (poll(&pfd, 1, 250) < 0 && errno != EINTR) {
			_exit(1);
		}
		if ((pfd.revents & (POLLIN | POLLHUP)) == 0) {
			continue;
		}
		k = recv(fd, in, sizeof(in), MSG_TRUNC);
		if (k == 0) {
			_exit(0);
		}
		if (k < 0 || send(fd, out, sizeof(out), MSG_NOSIGNAL) !=
		    (ssize_t)sizeof(out)) {
			_exit(1);
		}
	}
}

static int
cmd_ipc(int n, long gap_us)
{
	struct timespec gap = { gap_us / 1000000, gap_us % 1000000 * 1000 };
	uint8_t req[IPC_REQ], ans[256];
	struct pollfd pfd;
	double t0, c0, secs, mine;
	pid_t pid;
	int sv[2], i;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		die("socketpair");
	}
	if ((pid = fork()) < 0) {
		die("fork");
	}
	if (pid == 0) {
		close(sv[0]);
		ipc_child(sv[1]);
	}
	close(sv[1]);
	memset(req, 1, sizeof(req));
	pfd = (struct pollfd){ .fd = sv[0], .events = POLLIN };
	t0 = now_s();
	c0 = self_cpu_us();
	for (i = 0; i < n; i++) {
		if (gap_us > 0) {
			(void)nanosleep(&gap, NULL);
		}
		if (send(sv[0], req, sizeof(req), MSG_NOSIGNAL) !=
		    (ssize_t)sizeof(req) || poll(&pfd, 1, 5000) != 1 ||
		    recv(sv[0], ans, sizeof(ans), MSG_TRUNC) != IPC_ANS) {
			die("round trip");
		}
	}
	secs = now_s() - t0;
	mine = self_cpu_us() - c0;
	close(sv[0]);
	printf("floor ipc%s: %d round trips (%d-byte request, %d-byte answer, "
	    "SOCK_SEQPACKET, poll + recv + send", gap_us > 0 ? " idle" : "",
	    n, IPC_REQ, IPC_ANS);
	if (gap_us > 0) {
		printf(", the answering process idle %ld us before each",
		    gap_us);
	}
	printf("): answering process %.1f us of CPU per round trip, asking "
	    "side %.1f us, %.0f round trips/s\n", child_cpu_us(pid) / n,
	    mine / n, n / secs);
	return 0;
}

/* ---- tcp: the blocking null server ------------------------------------ */

static void
conn_serve_blocking(int fd)
{
	uint8_t buf[1024], out[1024];
	uint32_t be;
	size_t len;
	int i, one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (i = 0; i < 3; i++) {
		if (!read_full(fd, buf, 4)) {
			return;
		}
		memcpy(&be, buf, 4);
		if ((len = ntohl(be)) > sizeof(buf) ||
		    !read_full(fd, buf, len)) {
			return;
		}
		if (tcp_ans[i] == 0) {
			break;
		}
		frame_make(out, tcp_ans[i]);
		if (!write_full(fd, out, tcp_ans[i])) {
			return;
		}
	}
	(void)shutdown(fd, SHUT_WR);
	while (recv(fd, buf, sizeof(buf), 0) > 0) {
		;
	}
}

static void
tcp_child_blocking(int lfd, int n)
{
	int i, fd;

	for (i = 0; i < n; i++) {
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			_exit(1);
		}
		conn_serve_blocking(fd);
		close(fd);
	}
	_exit(0);
}

/* ---- tcp: the null server in the real server's shape ------------------ */

struct hconn {
	int		 fd;
	uint8_t		 buf[1024];
	size_t		 len;
	int		 step;		/* exchanges answered */
	struct hconn	*next;		/* on a queue */
	uint8_t		 out[1024];
	size_t		 outlen;
};

static struct {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct hconn	*pending, *done;
	int		 efd;
} hq = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL,
	-1 };

/* The worker: takes a frame, "computes" the answer, hands it back. */
static void *
hworker(void *arg)
{
	struct hconn *c;
	uint64_t one = 1;
	bool wake;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&hq.mu);
		while (hq.pending == NULL) {
			pthread_cond_wait(&hq.cv, &hq.mu);
		}
		c = hq.pending;
		hq.pending = c->next;
		pthread_mutex_unlock(&hq.mu);
		c->outlen = tcp_ans[c->step];
		if (c->outlen > 0) {
			frame_make(c->out, c->outlen);
		}
		pthread_mutex_lock(&hq.mu);
		wake = hq.done == NULL;
		c->next = hq.done;
		hq.done = c;
		pthread_mutex_unlock(&hq.mu);
		if (wake) {
			(void)!write(hq.efd, &one, sizeof(one));
		}
	}
	return NULL;
}

static void
hmod(int ep, struct hconn *c)
{
	struct epoll_event e = { .events = EPOLLIN | EPOLLONESHOT,
	    .data.ptr = c };

	(void)epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void
hclose(int ep, struct hconn *c, int *left)
{
	(void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
	(*left)--;
}

static void
tcp_child_handoff(int lfd, int n)
{
	struct epoll_event e, ev[64];
	struct hconn *c, *list;
	pthread_t t;
	uint64_t v;
	uint32_t be;
	ssize_t k;
	int ep, i, m, fd, one = 1, accepted = 0, left = n;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (hq.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		_exit(1);
	}
	e = (struct epoll_event){ .events = EPOLLIN, .data.ptr = NULL };
	(void)epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
	e = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &hq };
	(void)epoll_ctl(ep, EPOLL_CTL_ADD, hq.efd, &e);
	if (pthread_create(&t, NULL, hworker, NULL) != 0) {
		_exit(1);
	}
	while (left > 0) {
		if ((m = epoll_wait(ep, ev, 64, 1000)) < 0 && errno != EINTR) {
			_exit(1);
		}
		for (i = 0; i < m; i++) {
			if (ev[i].data.ptr == NULL) {
				while (accepted < n && (fd = accept4(lfd, NULL,
				    NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
					accepted++;
					(void)setsockopt(fd, IPPROTO_TCP,
					    TCP_NODELAY, &one, sizeof(one));
					if ((c = calloc(1, sizeof(*c))) == NULL) {
						_exit(1);
					}
					c->fd = fd;
					e = (struct epoll_event){ .events =
					    EPOLLIN | EPOLLONESHOT,
					    .data.ptr = c };
					(void)epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
				}
				continue;
			}
			if (ev[i].data.ptr == &hq) {
				(void)!read(hq.efd, &v, sizeof(v));
				pthread_mutex_lock(&hq.mu);
				list = hq.done;
				hq.done = NULL;
				pthread_mutex_unlock(&hq.mu);
				while ((c = list) != NULL) {
					list = c->next;
					if (c->outlen == 0) {
						(void)shutdown(c->fd, SHUT_WR);
						c->step = 3;	/* draining */
					} else if (send(c->fd, c->out,
					    c->outlen, MSG_NOSIGNAL |
					    MSG_DONTWAIT) != (ssize_t)c->outlen) {
						hclose(ep, c, &left);
						continue;
					} else {
						c->step++;
					}
					hmod(ep, c);
				}
				continue;
			}
			c = ev[i].data.ptr;
			k = recv(c->fd, c->buf + c->len, sizeof(c->buf) -
			    c->len, MSG_DONTWAIT);
			if (k <= 0 && !(k < 0 && errno == EAGAIN)) {
				hclose(ep, c, &left);
				continue;
			}
			if (k > 0 && c->step < 3) {
				c->len += (size_t)k;
			}
			memcpy(&be, c->buf, 4);
			if (c->step < 3 && c->len >= 4 &&
			    c->len >= 4 + ntohl(be)) {
				c->len = 0;		/* the whole frame */
				pthread_mutex_lock(&hq.mu);
				c->next = hq.pending;
				hq.pending = c;
				pthread_cond_signal(&hq.cv);
				pthread_mutex_unlock(&hq.mu);
				continue;		/* not re-armed */
			}
			hmod(ep, c);
		}
	}
	_exit(0);
}

/* ---- tcp: the client ---------------------------------------------------- */

static int
cmd_tcp(int n, bool handoff)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	uint8_t out[1024], in[1024];
	double t0, secs;
	pid_t pid;
	int lfd, fd, i, j, one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 128) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
		die("listen on 127.0.0.1");
	}
	if ((pid = fork()) < 0) {
		die("fork");
	}
	if (pid == 0) {
		if (handoff && fcntl(lfd, F_SETFL, O_NONBLOCK) != 0) {
			_exit(1);
		}
		handoff ? tcp_child_handoff(lfd, n) :
		    tcp_child_blocking(lfd, n);
	}
	close(lfd);
	t0 = now_s();
	for (i = 0; i < n; i++) {
		if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
		    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			die("connect to 127.0.0.1");
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		for (j = 0; j < 3; j++) {
			frame_make(out, tcp_req[j]);
			if (!write_full(fd, out, tcp_req[j]) ||
			    (tcp_ans[j] > 0 && !read_full(fd, in,
			    tcp_ans[j]))) {
				die("exchange");
			}
		}
		while (recv(fd, in, sizeof(in), 0) > 0) {
			;			/* until the server's FIN */
		}
		close(fd);
	}
	secs = now_s() - t0;
	printf("floor tcp%s: %d loopback connections shaped like flow A "
	    "(29 -> 37, 589 -> 677 bytes, a close record, FIN), null server "
	    "%s: %.1f us of CPU per connection, %.0f connections/s\n",
	    handoff ? " handoff" : "", n, handoff ?
	    "with an epoll I/O thread handing each frame to a worker" :
	    "in one thread with blocking calls", child_cpu_us(pid) / n,
	    n / secs);
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: bench-floor ipc [-n N] [--gap US]\n"
	    "       bench-floor tcp [-n N] [--handoff]\n");
}

int
main(int argc, char **argv)
{
	bool handoff = false;
	long gap_us = 0;
	int i, n = 5000;

	if (argc < 2 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
			n = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--gap") == 0 && i + 1 < argc) {
			gap_us = atol(argv[++i]);
		} else if (strcmp(argv[i], "--handoff") == 0) {
			handoff = true;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (n <= 0 || gap_us < 0 || gap_us > 1000000) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "ipc") == 0) {
		return cmd_ipc(n, gap_us);
	}
	if (strcmp(argv[1], "tcp") == 0) {
		return cmd_tcp(n, handoff);
	}
	usage(stderr);
	return 2;
}
