/*
 * mintline-faultproxy: a TCP proxy on loopback that damages the traffic
 * between a station or reader and mintline-server on a seeded schedule
 * (fault injection, docs/threat-model.md).  Test tool only; never installed.
 *
 *   mintline-faultproxy --listen PORT --connect HOST:PORT [--seed S]
 *       [--drop P] [--corrupt P] [--dup P] [--reorder P] [--cut P]
 *       [--delay-ms N] [--c2s-OPT ...] [--s2c-OPT ...]
 *       [--frames | --bytes] [--max-conns N] [--lifetime-ms N] [-v]
 *
 * P is a probability in [0, 1] per unit: per frame (u32be length | body,
 * the framing of docs/protocol.md §1) with --frames (the default), per
 * read chunk with --bytes.  A plain option applies to both directions; a
 * --c2s- or --s2c- prefix (client to server, server to client) to one.
 *
 *   drop     the unit is not forwarded
 *   corrupt  one bit of one byte is flipped (in --frames mode never in the
 *            length header, so the stream stays framed and the damage
 *            reaches the record layer / handshake parser)
 *   dup      the unit is forwarded twice
 *   reorder  the unit is held back and forwarded after the next one (or
 *            after 200 ms if no other comes)
 *   cut      both sockets are closed before the unit is forwarded
 *   delay-ms every unit waits a uniform 0..N ms (order kept)
 *
 * The schedule of connection k (0, 1, ...) is a function of seed and k
 * only, so a failing round is repeated with the same --seed.  Memory is
 * bounded: each connection is a child process that holds at most
 * PX_MAX_QUEUED bytes per direction (it stops reading while full) and a
 * frame longer than PX_MAX_FRAME switches that direction to --bytes.
 * --lifetime-ms bounds the whole proxy in time (default 120 s); it exits
 * 0 then.  Statistics (units seen, dropped, ...) go to stderr per
 * connection when it ends.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PX_MAX_FRAME	(128 * 1024)
#define PX_MAX_QUEUED	(1024 * 1024)
#define PX_MAX_UNITS	1024
#define PX_REORDER_MS	200

enum { C2S = 0, S2C = 1 };

struct px_fault {
	double		drop, corrupt, dup, reorder, cut;
	unsigned	delay_ms;
};

struct px_unit {
	uint64_t	 at_ms;		/* release time */
	size_t		 len, off;
	uint8_t		*p;
};

struct px_dir {
	const char	*name;
	int		 from, to;
	bool		 eof, bytes_mode;
	uint8_t		 in[PX_MAX_FRAME + 4];
	size_t		 in_len;
	struct px_unit	 q[PX_MAX_UNITS];	/* ring of units to send */
	size_t		 qh, qn, queued;
	struct px_unit	 held;			/* reorder: held back */
	bool		 has_held;
	uint64_t	 held_since, last_at;
	unsigned long	 n, ndrop, ncorrupt, ndup, nreorder;
};

static struct px_fault fault[2];
static bool bytes_mode, verbose;
static uint64_t seed = 1;
static uint64_t rng;
static volatile sig_atomic_t stop;
static pid_t kids[64];

static void
px_on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* splitmix64: small, seedable, good enough for a schedule */
static uint64_t
px_rand(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static bool
px_chance(double p)
{
	return p > 0 && (double)(px_rand() >> 11) / (double)(1ULL << 53) < p;
}

static uint64_t
px_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
px_die(const char *what)
{
	fprintf(stderr, "mintline-faultproxy: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int
px_push(struct px_dir *d, const uint8_t *p, size_t len, uint64_t at)
{
	struct px_unit *u;

	if (d->qn == PX_MAX_UNITS || len == 0) {
		return len == 0 ? 0 : -1;
	}
	u = &d->q[(d->qh + d->qn) % PX_MAX_UNITS];
	u->p = malloc(len);
	if (u->p == NULL) {
		return -1;
	}
	memcpy(u->p, p, len);
	u->len = len;
	u->off = 0;
	/* delays never reorder: a unit is released after the one before */
	u->at_ms = at < d->last_at ? d->last_at : at;
	d->last_at = u->at_ms;
	d->qn++;
	d->queued += len;
	return 0;
}

/* One unit from the reader side: apply the schedule.  Returns -1 to cut. */
static int
px_unit(struct px_dir *d, const struct px_fault *f, uint8_t *p, size_t len,
    size_t hdr)
{
	uint64_t now = px_now_ms(), at = now;
	int copies = 1;

	d->n++;
	if (px_chance(f->cut)) {
		if (verbose) {
			fprintf(stderr, "faultproxy: %s unit %lu: cut\n",
			    d->name, d->n);
		}
		return -1;
	}
	if (px_chance(f->drop)) {
		d->ndrop++;
		if (verbose) {
			fprintf(stderr, "faultproxy: %s unit %lu: drop\n",
			    d->name, d->n);
		}
		return 0;
	}
	if (len > hdr && px_chance(f->corrupt)) {
		size_t at_byte = hdr + px_rand() % (len - hdr);

		p[at_byte] ^= (uint8_t)(1u << (px_rand() % 8));
		d->ncorrupt++;
		if (verbose) {
			fprintf(stderr, "faultproxy: %s unit %lu: corrupt byte %zu\n",
			    d->name, d->n, at_byte);
		}
	}
	if (px_chance(f->dup)) {
		copies = 2;
		d->ndup++;
		if (verbose) {
			fprintf(stderr, "faultproxy: %s unit %lu: dup\n",
			    d->name, d->n);
		}
	}
	if (f->delay_ms > 0) {
		at += px_rand() % (f->delay_ms + 1);
	}
	if (!d->has_held && px_chance(f->reorder)) {
		d->held.p = malloc(len);
		if (d->held.p == NULL) {
			return -1;
		}
		memcpy(d->held.p, p, len);
		d->held.len = len;
		d->has_held = true;
		d->held_since = now;
		d->nreorder++;
		if (verbose) {
			fprintf(stderr, "faultproxy: %s unit %lu: held back\n",
			    d->name, d->n);
		}
		return 0;
	}
	while (copies-- > 0) {
		if (px_push(d, p, len, at) != 0) {
			return -1;
		}
	}
	if (d->has_held) {
		int r = px_push(d, d->held.p, d->held.len, at);

		free(d->held.p);
		d->has_held = false;
		if (r != 0) {
			return -1;
		}
	}
	return 0;
}

/* Cut the input buffer into units.  Returns -1 to cut the connection. */
static int
px_split(struct px_dir *d, const struct px_fault *f)
{
	size_t off = 0;

	if (d->bytes_mode) {
		int r = px_unit(d, f, d->in, d->in_len, 0);

		d->in_len = 0;
		return r;
	}
	while (d->in_len - off >= 4) {
		const uint8_t *h = d->in + off;
		size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 |
		    (size_t)h[2] << 8 | h[3];

		if (n > PX_MAX_FRAME) {
			/* not our framing (or an oversize test): raw bytes */
			d->bytes_mode = true;
			break;
		}
		if (d->in_len - off < 4 + n) {
			break;
		}
		if (px_unit(d, f, d->in + off, 4 + n, 4) != 0) {
			return -1;
		}
		off += 4 + n;
	}
	memmove(d->in, d->in + off, d->in_len - off);
	d->in_len -= off;
	if (d->bytes_mode && d->in_len > 0) {
		return px_split(d, f);
	}
	return 0;
}

static void
px_stats(const struct px_dir *d, int conn)
{
	fprintf(stderr, "faultproxy: conn %d %s: %lu units, %lu dropped, "
	    "%lu corrupted, %lu duplicated, %lu reordered\n", conn, d->name,
	    d->n, d->ndrop, d->ncorrupt, d->ndup, d->nreorder);
}

/* Child: serve one connection pair until both ends are done. */
static void
px_serve(int cfd, const struct sockaddr_in *dst, int conn)
{
	static struct px_dir dir[2];
	int sfd, i, rc = 0;

	rng = seed * 0x100000001b3ULL + (uint64_t)conn;
	(void)px_rand();
	sfd = socket(AF_INET, SOCK_STREAM, 0);
	if (sfd < 0 || connect(sfd, (const struct sockaddr *)dst,
	    sizeof(*dst)) != 0) {
		fprintf(stderr, "faultproxy: conn %d: upstream: %s\n", conn,
		    strerror(errno));
		_exit(1);
	}
	i = 1;
	(void)setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &i, sizeof(i));
	(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &i, sizeof(i));
	dir[C2S].name = "c2s";
	dir[C2S].from = cfd;
	dir[C2S].to = sfd;
	dir[S2C].name = "s2c";
	dir[S2C].from = sfd;
	dir[S2C].to = cfd;
	dir[C2S].bytes_mode = dir[S2C].bytes_mode = bytes_mode;

	for (;;) {
		struct pollfd pfd[4];
		int npfd = 0, timeout = -1, idx[4];
		uint64_t now = px_now_ms();
		bool done = true;

		for (i = 0; i < 2; i++) {
			struct px_dir *d = &dir[i];

			/* a held unit with nothing behind it goes out late */
			if (d->has_held && (d->eof ||
			    now - d->held_since >= PX_REORDER_MS)) {
				int r = px_push(d, d->held.p, d->held.len, now);

				free(d->held.p);
				d->has_held = false;
				if (r != 0) {
					goto cut;
				}
			}
			if (!d->eof && d->queued < PX_MAX_QUEUED &&
			    d->in_len < sizeof(d->in)) {
				pfd[npfd].fd = d->from;
				pfd[npfd].events = POLLIN;
				idx[npfd++] = i;
			}
			if (d->qn > 0) {
				struct px_unit *u = &d->q[d->qh];

				if (u->at_ms <= now) {
					pfd[npfd].fd = d->to;
					pfd[npfd].events = POLLOUT;
					idx[npfd++] = 2 + i;
				} else {
					int t = (int)(u->at_ms - now);

					timeout = timeout < 0 || t < timeout ?
					    t : timeout;
				}
			}
			if (d->has_held) {
				int t = PX_REORDER_MS - (int)(now - d->held_since);

				t = t < 1 ? 1 : t;
				timeout = timeout < 0 || t < timeout ? t : timeout;
			}
			if (!d->eof || d->qn > 0 || d->has_held) {
				done = false;
			}
		}
		if (done) {
			break;
		}
		if (poll(pfd, (nfds_t)npfd, timeout) < 0) {
			if (errno == EINTR) {
				continue;
			}
			goto cut;
		}
		for (i = 0; i < npfd; i++) {
			struct px_dir *d = &dir[idx[i] & 1];

			if (pfd[i].revents == 0) {
				continue;
			}
			if (idx[i] < 2) {
				ssize_t n = read(d->from, d->in + d->in_len,
				    sizeof(d->in) - d->in_len);

				if (n <= 0) {
					d->eof = true;
					/* a partial frame is forwarded as is */
					if (d->in_len > 0) {
						d->bytes_mode = true;
					}
				} else {
					d->in_len += (size_t)n;
				}
				if (d->in_len > 0 &&
				    px_split(d, &fault[idx[i] & 1]) != 0) {
					goto cut;
				}
			} else {
				struct px_unit *u = &d->q[d->qh];
				ssize_t n = write(d->to, u->p + u->off,
				    u->len - u->off);

				if (n < 0) {
					goto cut;
				}
				u->off += (size_t)n;
				if (u->off == u->len) {
					d->queued -= u->len;
					free(u->p);
					d->qh = (d->qh + 1) % PX_MAX_UNITS;
					d->qn--;
				}
			}
		}
		/* half close: the other side sees the end once all is out */
		for (i = 0; i < 2; i++) {
			struct px_dir *d = &dir[i];

			if (d->eof && d->qn == 0 && !d->has_held &&
			    d->to >= 0) {
				(void)shutdown(d->to, SHUT_WR);
			}
		}
	}
	goto out;
cut:
	rc = 2;
	(void)shutdown(cfd, SHUT_RDWR);
	(void)shutdown(sfd, SHUT_RDWR);
out:
	px_stats(&dir[C2S], conn);
	px_stats(&dir[S2C], conn);
	close(cfd);
	close(sfd);
	_exit(rc);
}

static int
px_parse_hostport(const char *s, struct sockaddr_in *ret)
{
	const char *colon = strrchr(s, ':');
	char host[64] = "127.0.0.1";
	long port;

	memset(ret, 0, sizeof(*ret));
	ret->sin_family = AF_INET;
	if (colon != NULL) {
		size_t n = (size_t)(colon - s);

		if (n == 0 || n >= sizeof(host)) {
			return -1;
		}
		memcpy(host, s, n);
		host[n] = '\0';
		s = colon + 1;
	}
	port = strtol(s, NULL, 10);
	if (port <= 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &ret->sin_addr) != 1) {
		return -1;
	}
	ret->sin_port = htons((uint16_t)port);
	return 0;
}

static void
usage(int rc)
{
	fprintf(rc ? stderr : stdout,
	    "usage: mintline-faultproxy --listen [HOST:]PORT --connect HOST:PORT\n"
	    "    [--seed S] [--drop P] [--corrupt P] [--dup P] [--reorder P]\n"
	    "    [--cut P] [--delay-ms N] (each also as --c2s-X / --s2c-X)\n"
	    "    [--frames | --bytes] [--max-conns N] [--lifetime-ms N] [-v]\n");
	exit(rc);
}

static double
px_prob(const char *s)
{
	char *end;
	double p = strtod(s, &end);

	if (*end != '\0' || !(p >= 0 && p <= 1)) {
		fprintf(stderr, "mintline-faultproxy: bad probability %s\n", s);
		exit(2);
	}
	return p;
}

int
main(int argc, char **argv)
{
	static const char *names[] = { "drop", "corrupt", "dup", "reorder",
	    "cut", "delay-ms" };
	struct option opts[3 * 6 + 10];
	char namebuf[3 * 6][24];
	struct sockaddr_in lsa, dst;
	const char *listen_at = NULL, *connect_to = NULL;
	long max_conns = 1000, lifetime_ms = 120000;
	int lfd, c, i, conn = 0, running = 0;
	uint64_t deadline;

	for (i = 0; i < 18; i++) {
		const char *pre[] = { "", "c2s-", "s2c-" };

		snprintf(namebuf[i], sizeof(namebuf[i]), "%s%s", pre[i / 6],
		    names[i % 6]);
		opts[i] = (struct option){ namebuf[i], required_argument, NULL,
		    1000 + i };
	}
	opts[18] = (struct option){ "listen", required_argument, NULL, 'l' };
	opts[19] = (struct option){ "connect", required_argument, NULL, 'c' };
	opts[20] = (struct option){ "seed", required_argument, NULL, 's' };
	opts[21] = (struct option){ "frames", no_argument, NULL, 'F' };
	opts[22] = (struct option){ "bytes", no_argument, NULL, 'B' };
	opts[23] = (struct option){ "max-conns", required_argument, NULL, 'm' };
	opts[24] = (struct option){ "lifetime-ms", required_argument, NULL, 't' };
	opts[25] = (struct option){ "verbose", no_argument, NULL, 'v' };
	opts[26] = (struct option){ "help", no_argument, NULL, 'h' };
	opts[27] = (struct option){ NULL, 0, NULL, 0 };

	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (c >= 1000 && c < 1018) {
			int k = (c - 1000) % 6, which = (c - 1000) / 6, d;

			for (d = 0; d < 2; d++) {
				struct px_fault *f = &fault[d];

				if (which != 0 && which - 1 != d) {
					continue;
				}
				switch (k) {
				case 0: f->drop = px_prob(optarg); break;
				case 1: f->corrupt = px_prob(optarg); break;
				case 2: f->dup = px_prob(optarg); break;
				case 3: f->reorder = px_prob(optarg); break;
				case 4: f->cut = px_prob(optarg); break;
				default:
					f->delay_ms = (unsigned)strtoul(optarg,
					    NULL, 10);
					break;
				}
			}
			continue;
		}
		switch (c) {
		case 'l': listen_at = optarg; break;
		case 'c': connect_to = optarg; break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'F': bytes_mode = false; break;
		case 'B': bytes_mode = true; break;
		case 'm': max_conns = strtol(optarg, NULL, 10); break;
		case 't': lifetime_ms = strtol(optarg, NULL, 10); break;
		case 'v': verbose = true; break;
		case 'h': usage(0); break;
		default: usage(2); break;
		}
	}
	if (listen_at == NULL || connect_to == NULL || optind != argc ||
	    px_parse_hostport(listen_at, &lsa) != 0 ||
	    px_parse_hostport(connect_to, &dst) != 0) {
		usage(2);
	}
	signal(SIGPIPE, SIG_IGN);
	{
		struct sigaction sa = { .sa_handler = px_on_term };

		sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: poll returns */
		sigaction(SIGINT, &sa, NULL);
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	i = 1;
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &i, sizeof(i)) != 0 ||
	    bind(lfd, (struct sockaddr *)&lsa, sizeof(lsa)) != 0 ||
	    listen(lfd, 64) != 0) {
		px_die("listen");
	}
	fprintf(stderr, "faultproxy: listening on %s -> %s, seed %llu\n",
	    listen_at, connect_to, (unsigned long long)seed);
	deadline = px_now_ms() + (uint64_t)lifetime_ms;
	for (;;) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		uint64_t now = px_now_ms();
		int cfd;
		pid_t pid;

		pid_t dead;

		while ((dead = waitpid(-1, NULL, WNOHANG)) > 0) {
			for (i = 0; i < 64; i++) {
				if (kids[i] == dead) {
					kids[i] = 0;
					running--;
				}
			}
		}
		if (now >= deadline || stop) {
			break;
		}
		if (poll(&p, 1, (int)(deadline - now > 500 ? 500 :
		    deadline - now)) <= 0) {
			continue;
		}
		cfd = accept(lfd, NULL, NULL);
		if (cfd < 0) {
			continue;
		}
		if (conn >= max_conns || running >= 64) {
			close(cfd);
			continue;
		}
		pid = fork();
		if (pid == 0) {
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			close(lfd);
			alarm((unsigned)((deadline - now) / 1000 + 1));
			px_serve(cfd, &dst, conn);
		}
		if (pid > 0) {
			for (i = 0; i < 64; i++) {
				if (kids[i] == 0) {
					kids[i] = pid;
					running++;
					break;
				}
			}
		}
		conn++;
		close(cfd);
	}
	close(lfd);
	for (i = 0; i < 64; i++) {	/* the lifetime is over */
		if (kids[i] > 0) {
			kill(kids[i], SIGTERM);
		}
	}
	while (wait(NULL) > 0) {
	}
	return 0;
}
