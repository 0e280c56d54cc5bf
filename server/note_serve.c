/*
 * mintline-note-server: the registration server's issuance side (BN-7,
 * BN-8) behind the stand-in local transport (server/note_uplink.h), until
 * mintline-server's hs dispatcher takes reg_note_handle() as its handler
 * for the NOTE_REC_* record types.
 *
 * The seal key stays in the HSM: ECDH runs in the token (pkcs11: URI,
 * libp11).  The registry is SQLite (WAL, synchronous=FULL): a note is on
 * disk before its acknowledgement leaves.  One thread per connection.
 *
 * Exit codes: 0 after SIGTERM/SIGINT, 1 on a start-up error.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "feature.h"
#include "ml_log.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "note_db.h"
#include "note_p11.h"
#include "note_proto.h"
#include "note_uplink.h"
#include "reg_note.h"

struct srv_opts {
	const char	*socket_path;
	const char	*db_path;
	const char	*server_key;
	const char	*issuer_pub[REG_NOTE_MAX_ISSUERS];
	size_t		 nissuers;
	const char	*feature_key;
	const char	*pidfile;
	int		 verbose;
};

struct conn {
	int		 fd;
	struct reg_note	*rn;
};

static void *
conn_main(void *arg)
{
	struct conn *c = arg;
	uint8_t req[NOTE_REQ_MAX], rbuf[NOTE_REPLY_MAX];
	struct ml_wr w;
	unsigned type;
	size_t n;
	int r;

	for (;;) {
		if ((r = note_frame_read(c->fd, &type, req, sizeof(req), &n)) != 0) {
			break;
		}
		w = ML_WR_FIXED(rbuf, sizeof(rbuf));
		if ((r = reg_note_handle(c->rn, type, req, n, &w)) != 0) {
			ml_warn("record type 0x%02x: %s", type, ml_strerror(r));
			break;
		}
		if (note_frame_write(c->fd, NOTE_REC_REPLY, w.p, w.len) != 0) {
			break;
		}
	}
	close(c->fd);
	free(c);
	return NULL;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mintline-note-server --socket PATH --db PATH --server-key URI\n"
	    "           --issuer-pub SPEC [--issuer-pub SPEC ...] [--feature-key FILE]\n"
	    "           [--pidfile FILE] [-v]\n"
	    "\n"
	    "  --server-key URI   pkcs11: URI of the seal key (ECDH in the token);\n"
	    "                     the PIN comes from its pin-source=\n"
	    "  --issuer-pub SPEC  an authorised issuer key: pkcs11: URI or PEM file\n"
	    "  --feature-key FILE also check the keyed identification codes\n");
}

static int
parse_opts(int argc, char **argv, struct srv_opts *o)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "db", required_argument, NULL, 'd' },
		{ "server-key", required_argument, NULL, 'k' },
		{ "issuer-pub", required_argument, NULL, 'i' },
		{ "feature-key", required_argument, NULL, 'f' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:d:k:i:f:p:vh", lo, NULL)) != -1) {
		switch (c) {
		case 's': o->socket_path = optarg; break;
		case 'd': o->db_path = optarg; break;
		case 'k': o->server_key = optarg; break;
		case 'i':
			if (o->nissuers == REG_NOTE_MAX_ISSUERS) {
				fprintf(stderr, "too many --issuer-pub\n");
				return 1;
			}
			o->issuer_pub[o->nissuers++] = optarg;
			break;
		case 'f': o->feature_key = optarg; break;
		case 'p': o->pidfile = optarg; break;
		case 'v': o->verbose++; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 1;
		}
	}
	if (o->socket_path == NULL || o->db_path == NULL ||
	    o->server_key == NULL || o->nissuers == 0) {
		usage(stderr);
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct srv_opts o = { 0 };
	struct reg_note_cfg cfg = { 0 };
	struct reg_note *rn = NULL;
	struct note_db *db = NULL;
	struct note_p11 *key = NULL;
	struct reg_note_stats st;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t fkey[FEATURE_KEY_LEN];
	sigset_t sigs;
	pthread_t th;
	size_t i;
	int lfd = -1, r, sig, rc = 1;
	FILE *pf;

	ml_log_set_ident("mintline-note-server");
	if (parse_opts(argc, argv, &o) != 0) {
		return 1;
	}
	if (o.verbose) {
		ml_log_set_level(o.verbose > 1 ? ML_LOG_DEBUG : ML_LOG_INFO);
	}
	if ((r = note_db_open(o.db_path, &db)) != 0 ||
	    (r = note_p11_open(o.server_key, &key)) != 0) {
		fprintf(stderr, "mintline-note-server: %s\n", ml_strerror(r));
		goto out;
	}
	cfg.db = db;
	note_p11_keyops(key, &cfg.server_keys);
	note_p11_pub(key, cfg.server_pub);
	for (i = 0; i < o.nissuers; i++) {
		if ((r = note_pub_load(o.issuer_pub[i], cfg.issuers[i])) != 0) {
			fprintf(stderr, "mintline-note-server: issuer key %zu: %s\n",
			    i + 1, ml_strerror(r));
			goto out;
		}
	}
	cfg.nissuers = o.nissuers;
	if (o.feature_key != NULL) {
		if ((r = feature_key_load(o.feature_key, fkey)) != 0) {
			fprintf(stderr, "mintline-note-server: feature key: %s\n",
			    ml_strerror(r));
			goto out;
		}
		cfg.feature_key = fkey;
	}
	if ((r = reg_note_new(&cfg, &rn)) != 0) {
		fprintf(stderr, "mintline-note-server: %s\n", ml_strerror(r));
		goto out;
	}
	if (strlen(o.socket_path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "mintline-note-server: socket path too long\n");
		goto out;
	}
	memcpy(sa.sun_path, o.socket_path, strlen(o.socket_path) + 1);
	(void)unlink(o.socket_path);
	umask(077);
	if ((lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 64) != 0) {
		fprintf(stderr, "mintline-note-server: %s: %s\n", o.socket_path,
		    strerror(errno));
		goto out;
	}
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (o.pidfile != NULL && (pf = fopen(o.pidfile, "we")) != NULL) {
		fprintf(pf, "%ld\n", (long)getpid());
		fclose(pf);
	}
	ml_info("listening on %s, %zu issuer key(s)", o.socket_path, o.nissuers);
	for (;;) {
		struct conn *c;
		struct ucred cr;
		socklen_t crl = sizeof(cr);
		struct timespec ts = { 0, 0 };
		siginfo_t si;
		int fd;

		if ((sig = sigtimedwait(&sigs, &si, &ts)) > 0) {
			break;
		}
		{
			fd_set rf;
			struct timeval tv = { 0, 200000 };

			FD_ZERO(&rf);
			FD_SET(lfd, &rf);
			if (select(lfd + 1, &rf, NULL, NULL, &tv) <= 0) {
				continue;
			}
		}
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			continue;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) != 0 ||
		    cr.uid != getuid()) {
			ml_warn("connection from another uid refused");
			close(fd);
			continue;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->rn = rn;
		if (pthread_create(&th, NULL, conn_main, c) != 0) {
			close(fd);
			free(c);
			continue;
		}
		pthread_detach(th);
	}
	reg_note_get_stats(rn, &st);
	fprintf(stderr, "mintline-note-server: enrolled %llu, registered %llu, "
	    "repeated %llu, queries %llu, refused",
	    (unsigned long long)st.enrolled, (unsigned long long)st.registered,
	    (unsigned long long)st.again, (unsigned long long)st.queries);
	for (i = 1; i < NOTE_R_COUNT; i++) {
		if (st.rejected[i] != 0) {
			fprintf(stderr, " %s=%llu", note_reason_name((int)i),
			    (unsigned long long)st.rejected[i]);
		}
	}
	fprintf(stderr, "\n");
	(void)unlink(o.socket_path);
	rc = 0;
	/* Connection threads may still run: leave without freeing under them. */
	_exit(rc);
out:
	if (lfd >= 0) {
		close(lfd);
	}
	ml_wipe(fkey, sizeof(fkey));
	reg_note_free(rn);
	note_p11_free(key);
	note_db_close(db);
	return rc;
}
