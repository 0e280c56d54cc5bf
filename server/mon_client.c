/*
 * See mon_client.h.  Every channel is a SOCK_SEQPACKET socketpair; the
 * monitor gets the other ends on fds MON_FD_BASE .. MON_FD_BASE + nchan
 * (the last is the notify channel) across execv().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ml_log.h"
#include "ml_rd.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "mon_client.h"

#define MON_CALL_TIMEOUT_MS	30000	/* an HSM call; generous */

struct mon {
	pid_t		 pid;
	int		 nchan;
	int		 fd[MON_MAX_CHANNELS];
	bool		 busy[MON_MAX_CHANNELS];
	int		 notify_fd;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	atomic_bool	 dead;
	uint8_t		 pub[ML_P256_PUB_LEN];
	uint8_t		 seal_pub[ML_P256_PUB_LEN];
	bool		 has_seal;
	char		*key_uri;	/* the server key's, as given */
	/* closed sessions not yet told (mon_sess_close), under close_mu */
	pthread_mutex_t	 close_mu;
	uint64_t	 close_id[MON_CLOSE_MAX];
	int		 nclose;
	uint64_t	 close_since_ms;	/* when the first one came */
};

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static __thread uint64_t tl_sess;
static __thread enum mon_phase tl_phase;
static __thread bool *tl_auth_owed;

void
mon_bind(uint64_t sess, enum mon_phase phase, bool *auth_owed)
{
	tl_sess = sess;
	tl_phase = phase;
	tl_auth_owed = phase == MON_PHASE_POSTAUTH ? auth_owed : NULL;
}

/*
 * Before the session's first POSTAUTH request: MON_SESS_AUTH, if the
 * handshake's end was not told yet (mon_bind).  The monitor still
 * refuses POSTAUTH work of a session that did not use the key in its
 * handshake (ID-2, BN-7).
 */
static int
auth_if_owed(struct mon *m)
{
	int r;

	if (tl_auth_owed == NULL || !*tl_auth_owed) {
		return 0;
	}
	if ((r = mon_sess_auth(m, tl_sess)) != 0) {
		return r;
	}
	*tl_auth_owed = false;
	return 0;
}

pid_t
mon_pid(const struct mon *m)
{
	return m->pid;
}

int
mon_watch_fd(const struct mon *m)
{
	return m->notify_fd;
}

void
mon_lost(struct mon *m)
{
	atomic_store(&m->dead, true);
}

bool
mon_alive(const struct mon *m)
{
	return !atomic_load(&m->dead);
}

void
mon_pub(const struct mon *m, uint8_t ret_pub[ML_P256_PUB_LEN])
{
	memcpy(ret_pub, m->pub, ML_P256_PUB_LEN);
}

bool
mon_has_seal(const struct mon *m)
{
	return m->has_seal;
}

static int
chan_get(struct mon *m)
{
	int i;

	pthread_mutex_lock(&m->mu);
	for (;;) {
		for (i = 0; i < m->nchan; i++) {
			if (!m->busy[i]) {
				m->busy[i] = true;
				pthread_mutex_unlock(&m->mu);
				return i;
			}
		}
		pthread_cond_wait(&m->cv, &m->mu);
	}
}

static void
chan_put(struct mon *m, int i)
{
	pthread_mutex_lock(&m->mu);
	m->busy[i] = false;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

/*
 * One request/reply.  Returns the monitor's result (0 or ML_ERR_*), with
 * exactly reply_len reply bytes in reply on 0; ML_ERR_IO when the monitor
 * is gone.
 */
static int
mon_call(struct mon *m, uint8_t type, uint64_t sess, const void *body,
    size_t len, uint8_t *reply, size_t reply_len, size_t *ret_len)
{
	uint8_t req[MON_MAX_MSG], rep[MON_MAX_MSG];
	struct ml_wr w = ML_WR_FIXED(req, sizeof(req));
	struct ml_rd rd;
	struct pollfd pfd;
	uint32_t rc;
	ssize_t k = -1;
	int i = -1, r = ML_ERR_INTERNAL;

	if (atomic_load(&m->dead)) {
		r = ml_errf(ML_ERR_IO, "monitor (pid %d): gone", (int)m->pid);
		goto out;
	}
	ML_TRY(ml_wr_u8(&w, type));
	ML_TRY(ml_wr_u64be(&w, sess));
	ML_TRY(ml_wr_bytes(&w, body, len));
	i = chan_get(m);
	do {
		k = send(m->fd[i], w.p, w.len, MSG_NOSIGNAL);
	} while (k < 0 && errno == EINTR);
	if (k != (ssize_t)w.len) {
		r = ml_errf_sys(ML_ERR_IO, "monitor (pid %d): request not sent",
		    (int)m->pid);
		goto out;
	}
	pfd = (struct pollfd){ .fd = m->fd[i], .events = POLLIN };
	do {
		k = poll(&pfd, 1, MON_CALL_TIMEOUT_MS);
	} while (k < 0 && errno == EINTR);
	if (k != 1) {
		r = k == 0 ? ml_errf(ML_ERR_IO, "monitor (pid %d): no answer in "
		    "%d ms", (int)m->pid, MON_CALL_TIMEOUT_MS) :
		    ml_errf_sys(ML_ERR_IO, "monitor (pid %d): poll", (int)m->pid);
		goto out;
	}
	do {
		k = recv(m->fd[i], rep, sizeof(rep), MSG_TRUNC);
	} while (k < 0 && errno == EINTR);
	if (k <= 0 || (size_t)k > sizeof(rep)) {
		r = k < 0 ? ml_errf_sys(ML_ERR_IO, "monitor (pid %d): answer "
		    "not read", (int)m->pid) : ml_errf(ML_ERR_IO, "monitor "
		    "(pid %d): %s", (int)m->pid, k == 0 ? "closed the channel" :
		    "answer over the size limit");
		goto out;
	}
	rd = ML_RD_INIT(rep, (size_t)k);
	ML_TRY(ml_rd_u32be(&rd, &rc));
	if (rc != 0) {
		r = (int)rc;
		ML_ENSURE(r < 0, ML_ERR_FORMAT);
		goto out;
	}
	if (ret_len != NULL) {
		ML_ENSURE(ml_rd_left(&rd) <= reply_len, ML_ERR_TOO_LARGE);
		*ret_len = ml_rd_left(&rd);
		ML_TRY(ml_rd_copy(&rd, reply, *ret_len));
	} else {
		ML_TRY(ml_rd_copy(&rd, reply, reply_len));
	}
	ML_TRY(ml_rd_end(&rd));
	r = 0;
out:
	if (r == ML_ERR_IO && !atomic_exchange(&m->dead, true)) {
		ml_err("monitor: channel lost (%s): the HSM key is gone",
		    k == 0 ? "closed" : strerror(errno));
	}
	if (i >= 0) {
		chan_put(m, i);
	}
	ml_wipe(rep, sizeof(rep));
	ml_wipe(req, sizeof(req));
	return r;
}

static int
fwd_sign(void *ctx, const uint8_t digest[ML_SHA256_LEN],
    uint8_t ret_sig[ML_P256_SIG_LEN])
{
	if (tl_phase != MON_PHASE_PREAUTH) {
		return ML_ERR_STATE;
	}
	return mon_call(ctx, MON_SIGN_TRANSCRIPT, tl_sess, digest,
	    ML_SHA256_LEN, ret_sig, ML_P256_SIG_LEN, NULL);
}

static int
fwd_ecdh(void *ctx, const uint8_t peer[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	uint8_t type;
	int r;

	switch (tl_phase) {
	case MON_PHASE_PREAUTH:
		type = MON_DECRYPT_KEYX;
		break;
	case MON_PHASE_POSTAUTH:
		type = MON_DECRYPT_FEATURE;
		if ((r = auth_if_owed(ctx)) != 0) {
			return r;
		}
		break;
	default:
		return ML_ERR_STATE;
	}
	return mon_call(ctx, type, tl_sess, peer, ML_P256_PUB_LEN,
	    ret_secret, ML_P256_SECRET_LEN, NULL);
}

static int
fwd_random(void *ctx, uint8_t *buf, size_t n)
{
	(void)ctx;
	return ml_rand(buf, n);	/* nonces need no HSM round trip */
}

/* The seal key (BN-7): only ever used after a handshake, never signs. */
static int
fwd_seal_ecdh(void *ctx, const uint8_t peer[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	int r;

	if (tl_phase != MON_PHASE_POSTAUTH) {
		return ML_ERR_STATE;
	}
	if ((r = auth_if_owed(ctx)) != 0) {
		return r;
	}
	return mon_call(ctx, MON_DECRYPT_FEATURE, tl_sess, peer,
	    ML_P256_PUB_LEN, ret_secret, ML_P256_SECRET_LEN, NULL);
}

static const struct key_class mon_server_class = {
	.name = "monitor",
	.sign = fwd_sign,
	.ecdh = fwd_ecdh,
	.random = fwd_random,
};

static const struct key_class mon_seal_class = {
	.name = "monitor-seal",
	.ecdh = fwd_seal_ecdh,
	.random = fwd_random,
};

static int
prov_open(void *ctx, const char *uri, struct key **ret)
{
	struct mon *m = ctx;

	if (strcmp(uri, m->key_uri) == 0) {
		return key_new(&mon_server_class, m, m->pub, ret);
	}
	if (!m->has_seal) {
		return ml_errf(ML_ERR_NOT_FOUND, "%s: the monitor holds no such "
		    "key (a seal key must be set when mintline-server starts: "
		    "note-seal-key)", uri);
	}
	return key_new(&mon_seal_class, m, m->seal_pub, ret);
}

static int
prov_pub(void *ctx, const char *uri, uint8_t ret_pub[ML_P256_PUB_LEN])
{
	return mon_pubkey(ctx, uri, ret_pub);
}

void
mon_key_provider(struct mon *m, struct key_provider *ret)
{
	*ret = (struct key_provider){ .name = "monitor", .ctx = m,
	    .open = prov_open, .pub = prov_pub };
}

int
mon_sess_auth(struct mon *m, uint64_t sess)
{
	uint8_t none;

	return mon_call(m, MON_SESS_AUTH, sess, NULL, 0, &none, 0, NULL);
}

/* One close note with the gathered ids; close_mu held. */
static void
close_send(struct mon *m)
{
	uint8_t msg[1 + 8 * MON_CLOSE_MAX];
	struct ml_wr w = ML_WR_FIXED(msg, sizeof(msg));
	int i;

	(void)!ml_wr_u8(&w, MON_SESS_CLOSE);
	for (i = 0; i < m->nclose; i++) {
		(void)!ml_wr_u64be(&w, m->close_id[i]);
	}
	m->nclose = 0;
	if (atomic_load(&m->dead)) {
		return;
	}
	/* best effort: a lost note only leaves a slot to be reused */
	(void)!send(m->notify_fd, w.p, w.len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/*
 * Closed sessions are told in notes of up to MON_CLOSE_MAX ids, at the
 * latest MON_CLOSE_WAIT_MS after the first (mon_close_flush), not one
 * note per connection: each note wakes the monitor (BN-2).  Meanwhile the
 * monitor still holds the session as it was; the worker no longer uses it.
 */
void
mon_sess_close(struct mon *m, uint64_t sess)
{
	if (m == NULL) {
		return;
	}
	pthread_mutex_lock(&m->close_mu);
	if (m->nclose == 0) {
		m->close_since_ms = mono_ms();
	}
	m->close_id[m->nclose++] = sess;
	if (m->nclose == MON_CLOSE_MAX) {
		close_send(m);
	}
	pthread_mutex_unlock(&m->close_mu);
}

void
mon_close_flush(struct mon *m, bool now)
{
	if (m == NULL) {
		return;
	}
	pthread_mutex_lock(&m->close_mu);
	if (m->nclose > 0 && (now ||
	    mono_ms() - m->close_since_ms >= MON_CLOSE_WAIT_MS)) {
		close_send(m);
	}
	pthread_mutex_unlock(&m->close_mu);
}

int
mon_pubkey(struct mon *m, const char *uri, uint8_t ret_pub[ML_P256_PUB_LEN])
{
	size_t n = strlen(uri);

	if (n > MON_MAX_URI) {
		return ML_ERR_TOO_LARGE;
	}
	return mon_call(m, MON_PUBKEY, 0, uri, n, ret_pub, ML_P256_PUB_LEN,
	    NULL);
}

int
mon_start(const char *monitor, int nchan, const char *module, const char *key,
    const char *seal, int verbose, struct mon **ret)
{
	struct mon *m = NULL;
	int sv[MON_MAX_CHANNELS + 1][2];
	char nbuf[16], *argv[14];
	uint8_t hello[1 + 2 * ML_P256_PUB_LEN];
	size_t hl = 0;
	int i, a = 0, nopen = 0, r = ML_ERR_INTERNAL;

	ML_ENSURE(nchan >= 1 && nchan <= MON_MAX_CHANNELS, ML_ERR_ARG);
	if (strstr(key, "pin-value=") != NULL ||
	    (seal != NULL && strstr(seal, "pin-value=") != NULL)) {
		ml_err("the key URI carries its PIN (pin-value): with privilege "
		    "separation the network process must not see the PIN; "
		    "use pin-source=file:...");
		return ML_ERR_ARG;
	}
	if (access(monitor, X_OK) != 0) {
		r = ml_errf_sys(ML_ERR_IO, "monitor %s", monitor);
		ml_err("%s", ml_errmsg(r));
		return r;
	}
	ML_ENSURE((m = calloc(1, sizeof(*m))) != NULL, ML_ERR_NOMEM);
	ML_ENSURE((m->key_uri = strdup(key)) != NULL, ML_ERR_NOMEM);
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	pthread_mutex_init(&m->close_mu, NULL);
	m->nchan = nchan;
	m->notify_fd = -1;
	for (i = 0; i <= nchan; i++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
		    sv[i]) != 0) {
			r = ml_errf_sys(ML_ERR_IO, "monitor channel socketpair");
			goto out;
		}
		nopen++;
	}
	snprintf(nbuf, sizeof(nbuf), "%d", nchan);
	argv[a++] = (char *)"mintline-monitor";
	argv[a++] = (char *)"--channels";
	argv[a++] = nbuf;
	argv[a++] = (char *)"--module";
	argv[a++] = (char *)module;
	argv[a++] = (char *)"--key";
	argv[a++] = (char *)key;
	if (seal != NULL && *seal != '\0') {
		argv[a++] = (char *)"--seal-key";
		argv[a++] = (char *)seal;
	}
	if (verbose > 0) {
		argv[a++] = (char *)(verbose > 1 ? "-vv" : "-v");
	}
	argv[a] = NULL;
	if ((m->pid = fork()) < 0) {
		r = ml_errf_sys(ML_ERR_IO, "monitor %s: fork", monitor);
		goto out;
	}
	if (m->pid == 0) {
		sigset_t none;
		int hi;

		/* child: the monitor ends to MON_FD_BASE.., via high fds so
		 * that no dup2 lands on an end not yet moved */
		sigemptyset(&none);
		pthread_sigmask(SIG_SETMASK, &none, NULL);
		for (i = 0; i <= nchan; i++) {
			close(sv[i][0]);
			if ((hi = fcntl(sv[i][1], F_DUPFD, 1024)) < 0) {
				_exit(127);
			}
			close(sv[i][1]);
			sv[i][1] = hi;
		}
		for (i = 0; i <= nchan; i++) {
			if (dup2(sv[i][1], MON_FD_BASE + i) < 0) {
				_exit(127);
			}
		}
		(void)close_range(MON_FD_BASE + (unsigned)nchan + 1, ~0u, 0);
		execv(monitor, argv);
		_exit(127);
	}
	for (i = 0; i <= nchan; i++) {
		close(sv[i][1]);
		if (i < nchan) {
			m->fd[i] = sv[i][0];
		} else {
			m->notify_fd = sv[i][0];
		}
	}
	nopen = 0;
	if ((r = mon_call(m, MON_HELLO, 0, NULL, 0, hello, sizeof(hello),
	    &hl)) != 0) {
		(void)ml_errf(r, "the monitor did not start (%s): see its "
		    "messages above", ml_strerror(r));
		goto out;
	}
	ML_ENSURE(hl >= 1 + ML_P256_PUB_LEN, ML_ERR_FORMAT);
	memcpy(m->pub, hello + 1, ML_P256_PUB_LEN);
	m->has_seal = (hello[0] & MON_HELLO_SEAL) != 0;
	if (m->has_seal) {
		ML_ENSURE(hl == 1 + 2 * ML_P256_PUB_LEN, ML_ERR_FORMAT);
		memcpy(m->seal_pub, hello + 1 + ML_P256_PUB_LEN,
		    ML_P256_PUB_LEN);
	}
	*ret = m;
	m = NULL;
	r = 0;
out:
	for (i = 0; i < nopen; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
	if (m != NULL && m->pid > 0) {
		mon_stop(m);
	} else if (m != NULL) {
		free(m->key_uri);
		free(m);
	}
	return r;
}

void
mon_stop(struct mon *m)
{
	int i, st;

	if (m == NULL) {
		return;
	}
	for (i = 0; i < m->nchan; i++) {
		if (m->fd[i] > 0) {
			close(m->fd[i]);
		}
	}
	if (m->notify_fd >= 0) {
		close(m->notify_fd);
	}
	if (m->pid > 0) {
		/* EOF on every channel ends the monitor */
		while (waitpid(m->pid, &st, 0) < 0 && errno == EINTR) {
		}
	}
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->close_mu);
	free(m->key_uri);
	ml_freezero(m, sizeof(*m));
}
