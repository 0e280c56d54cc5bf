/*
 * Handshake benchmark (ID-2, ID-4).  Not a timed test: it prints figures next
 * to an anchor measured in the same run (OpenSSL TLS 1.3 with mutual
 * authentication, the same P-256 certificates, no resumption).
 *
 *   bench-hs [inproc] [-n N]
 *	flows A and B vs TLS 1.3 mutual auth: full handshakes/s (both ends in
 *	one thread, memory pipe / BIO pair), server CPU per full handshake,
 *	server CPU per rejected forged first message (valid certificate,
 *	forged signature) and, for TLS, per client rejected at its
 *	certificate (another CA).
 *   bench-hs mkreader --ca-dir D --serial S --out PREFIX
 *	a software reader key (PREFIX.key) and its certificate (PREFIX.pem)
 *	from the CA in D (for the flood run against mintline-server).
 *   bench-hs tls-loopback [-n N]
 *	the anchor of the real server: an OpenSSL TLS 1.3 mutual-auth server
 *	(the in-process table's certificates and settings) in a child process
 *	over loopback, one thread with blocking calls, and one client thread
 *	making N connections one after another (connect, handshake,
 *	close_notify), as mintline-load hs does against mintline-server:
 *	handshakes/s and the server process's CPU per handshake.
 *   bench-hs flood --server H:P --ca ROOT --cert C --key K [--seconds S]
 *	[--threads T] [--ratio R]
 *	real mintline-server over loopback: legitimate flow-A handshakes/s
 *	alone, then with forged first messages at R x that rate.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <arpa/inet.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../unit/test_hs_fixture.h"
#include "hs_int.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ hs, in proc */

static struct hs_ca *ca, *ca2;
static struct hs_trust *trust;
static struct fx_party srv, rdr;
static struct fx_reg reg;

/* One handshake through the memory pipe; returns server CPU ns or 0 on
 * failure.  forge: corrupt the client's authenticated message's
 * signature, and expect the server to refuse it. */
static uint64_t
hs_once(enum hs_flow flow, bool forge)
{
	struct hs_client_cfg cc = fx_client_cfg(&rdr, flow, trust);
	struct hs_server_cfg sc = fx_server_cfg(&srv, trust, &reg);
	struct hs *c = NULL, *s = NULL;
	struct ml_wr co = ml_wr_dyn(1 << 16), so = ml_wr_dyn(1 << 16);
	struct ml_rd rd, b;
	uint64_t scpu = 0, t;
	int r = 0, step;
	bool ok = false;

	if (hs_client_new(&cc, &c) != 0) {
		goto out;
	}
	t = cpu_ns();
	r = hs_server_new(&sc, &s);
	scpu += cpu_ns() - t;
	if (r != 0 || hs_advance(c, NULL, 0, &co) != 0) {
		goto out;
	}
	for (step = 0; step < 4; step++) {
		rd = ML_RD_INIT(co.p, co.len);
		while (hs_frame_next(&rd, HS_MAX_FRAME, &b) == 0) {
			if (forge && ml_rd_ptr(&b)[0] != HS_KEYREQ) {
				((uint8_t *)ml_rd_ptr(&b))[ml_rd_left(&b) - 3] ^= 1;
			}
			t = cpu_ns();
			r = hs_advance(s, ml_rd_ptr(&b), ml_rd_left(&b), &so);
			scpu += cpu_ns() - t;
			if (r != 0) {
				ok = forge && hs_alert(s) == HS_ALERT_SIG;
				goto out;
			}
		}
		ml_wr_clear(&co);
		if (hs_is_done(s) && hs_is_done(c)) {
			ok = !forge;
			break;
		}
		rd = ML_RD_INIT(so.p, so.len);
		while (hs_frame_next(&rd, HS_MAX_FRAME, &b) == 0) {
			if (hs_advance(c, ml_rd_ptr(&b), ml_rd_left(&b), &co) != 0) {
				goto out;
			}
		}
		ml_wr_clear(&so);
		if (hs_is_done(s) && hs_is_done(c)) {
			ok = !forge;
			break;
		}
	}
out:
	t = cpu_ns();
	hs_free(s);
	scpu += cpu_ns() - t;
	hs_free(c);
	ml_wr_free(&co);
	ml_wr_free(&so);
	return ok ? (scpu ? scpu : 1) : 0;
}

/* ------------------------------------------------------------ TLS 1.3 */

struct tls_party {
	EVP_PKEY	*key;
	X509		*cert;
};

static X509 *
x509_der(const uint8_t *der, size_t len)
{
	const uint8_t *p = der;

	return d2i_X509(NULL, &p, (long)len);
}

static void
tls_party(struct tls_party *t, struct hs_ca *issuer, const char *role,
    const char *serial, uint64_t certno)
{
	uint8_t pub[65], *der = NULL;
	size_t n, len;
	struct hs_ca_req req = { .pub = pub, .role = role, .serial = serial,
	    .certno = certno, .backdate_s = 60, .valid_s = 86400 };

	t->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (t->key == NULL || EVP_PKEY_get_octet_string_param(t->key,
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub), &n) != 1 ||
	    hs_ca_issue(issuer, &req, &der, &len) != 0 ||
	    (t->cert = x509_der(der, len)) == NULL) {
		fx_die("tls party");
	}
	free(der);
}

static SSL_CTX *
tls_ctx(bool server, const struct tls_party *p, X509 *root)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() :
	    TLS_client_method());

	if (ctx == NULL ||
	    !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_use_certificate(ctx, p->cert) ||
	    !SSL_CTX_use_PrivateKey(ctx, p->key) ||
	    !SSL_CTX_set1_groups_list(ctx, "P-256") ||
	    !SSL_CTX_set1_sigalgs_list(ctx, "ECDSA+SHA256") ||
	    !X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), root)) {
		fx_die("tls ctx");
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
	    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (server) {
		SSL_CTX_set_num_tickets(ctx, 0);
	}
	return ctx;
}

/* One TLS 1.3 mutual-auth handshake over a BIO pair; server CPU ns, or
 * 0.  expect_fail: the server must refuse the client. */
static uint64_t
tls_once(SSL_CTX *cctx, SSL_CTX *sctx, bool expect_fail)
{
	SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
	BIO *b1 = NULL, *b2 = NULL;
	uint64_t scpu = 0, t;
	int rc = 0, rs = 0, i;
	bool ok = false;

	BIO_new_bio_pair(&b1, 0, &b2, 0);
	SSL_set_bio(c, b1, b1);
	SSL_set_bio(s, b2, b2);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (i = 0; i < 20; i++) {
		if (rc != 1) {
			rc = SSL_do_handshake(c);
		}
		t = cpu_ns();
		if (rs != 1) {
			rs = SSL_do_handshake(s);
		}
		scpu += cpu_ns() - t;
		if (rs <= 0 && SSL_get_error(s, rs) != SSL_ERROR_WANT_READ) {
			ok = expect_fail;
			break;
		}
		if (rc == 1 && rs == 1) {
			ok = !expect_fail;
			break;
		}
	}
	t = cpu_ns();
	SSL_free(s);
	scpu += cpu_ns() - t;
	SSL_free(c);
	ERR_clear_error();
	return ok ? scpu : 0;
}

/* ------------------------------------------------------------ inproc */

static void
setup_fixture(void)
{
	uint8_t *der;
	size_t len;

	if (hs_ca_create("bench root", 30, &ca) != 0 ||
	    hs_ca_create("other root", 30, &ca2) != 0) {
		fx_die("ca");
	}
	fx_party_make(&srv, ca, "server", NULL, 2, 60, 86400);
	fx_party_make(&rdr, ca, "reader", "RDR-0001", 0x10, 60, 86400);
	if (hs_ca_root_der(ca, &der, &len) != 0 ||
	    hs_trust_new_der(der, len, NULL, 0, &trust) != 0) {
		fx_die("trust");
	}
	free(der);
	snprintf(reg.e[0].serial, sizeof(reg.e[0].serial), "RDR-0001");
	snprintf(reg.e[0].certno, sizeof(reg.e[0].certno), "10");
	reg.e[0].kind = HS_KIND_READER;
	reg.n = 1;
}

struct result {
	double	 per_s;		/* full handshakes/s, both ends, one thread */
	double	 srv_us;	/* server CPU per handshake */
};

static struct result
measure(uint64_t (*fn)(void *), void *arg, int n)
{
	struct result res = { 0, 0 };
	uint64_t sum = 0, v;
	double t0;
	int i;

	for (i = 0; i < n / 20 + 1; i++) {	/* warm-up */
		(void)fn(arg);
	}
	t0 = now_s();
	for (i = 0; i < n; i++) {
		if ((v = fn(arg)) == 0) {
			fprintf(stderr, "bench-hs: a handshake failed\n");
			exit(1);
		}
		sum += v;
	}
	res.per_s = n / (now_s() - t0);
	res.srv_us = (double)sum / n / 1000.0;
	return res;
}

struct tls_arg {
	SSL_CTX	*c, *s;
	bool	 fail;
};
static uint64_t fn_a(void *a) { (void)a; return hs_once(HS_FLOW_A, false); }
static uint64_t fn_b(void *a) { (void)a; return hs_once(HS_FLOW_B, false); }
static uint64_t fn_a_forged(void *a) { (void)a; return hs_once(HS_FLOW_A, true); }
static uint64_t fn_b_forged(void *a) { (void)a; return hs_once(HS_FLOW_B, true); }
static uint64_t
fn_tls(void *a)
{
	struct tls_arg *t = a;

	return tls_once(t->c, t->s, t->fail);
}

static int
cmd_inproc(int n)
{
	struct tls_party ts, tc, tbad;
	struct tls_arg ok, bad;
	struct result ra, rb, rfa, rfb, rt, rtf;
	uint8_t *der;
	size_t len;
	X509 *root = NULL;

	setup_fixture();
	tls_party(&ts, ca, "server", NULL, 100);
	tls_party(&tc, ca, "reader", "RDR-0001", 101);
	tls_party(&tbad, ca2, "reader", "RDR-0002", 102);
	if (hs_ca_root_der(ca, &der, &len) != 0 ||
	    (root = x509_der(der, len)) == NULL) {
		fx_die("root");
	}
	free(der);
	ok.s = tls_ctx(true, &ts, root);
	ok.c = tls_ctx(false, &tc, root);
	ok.fail = false;
	bad.s = ok.s;
	bad.c = tls_ctx(false, &tbad, root);
	bad.fail = true;

	ra = measure(fn_a, NULL, n);
	rb = measure(fn_b, NULL, n);
	rt = measure(fn_tls, &ok, n);
	rfa = measure(fn_a_forged, NULL, n);
	rfb = measure(fn_b_forged, NULL, n);
	rtf = measure(fn_tls, &bad, n);

	printf("bench-hs inproc: %d handshakes each, one thread, both ends, "
	    "software P-256 keys\n", n);
	printf("| protocol | full handshakes/s | server CPU / full | server CPU / rejected | rejected/full |\n");
	printf("| --- | --- | --- | --- | --- |\n");
	printf("| mintline flow A | %.0f | %.0f us | %.0f us (forged sig) | %.2f |\n",
	    ra.per_s, ra.srv_us, rfa.srv_us, rfa.srv_us / ra.srv_us);
	printf("| mintline flow B | %.0f | %.0f us | %.0f us (forged sig) | %.2f |\n",
	    rb.per_s, rb.srv_us, rfb.srv_us, rfb.srv_us / rb.srv_us);
	printf("| TLS 1.3 mutual auth | %.0f | %.0f us | %.0f us (client cert of another CA) | %.2f |\n",
	    rt.per_s, rt.srv_us, rtf.srv_us, rtf.srv_us / rt.srv_us);
	printf("flow A / TLS = %.2fx, flow B / TLS = %.2fx (handshakes/s); "
	    "server CPU TLS / flow A = %.2fx\n", ra.per_s / rt.per_s,
	    rb.per_s / rt.per_s, rt.srv_us / ra.srv_us);
	return 0;
}

/* ------------------------------------------------- TLS 1.3 over loopback */

/* The child: n connections, each a handshake then close_notify. */
static void
tls_serve(SSL_CTX *sctx, int lfd, int n)
{
	char buf[64];
	SSL *s;
	int i, fd, one = 1;

	for (i = 0; i < n; i++) {
		if ((fd = accept(lfd, NULL, NULL)) < 0) {
			_exit(1);
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if ((s = SSL_new(sctx)) == NULL || SSL_set_fd(s, fd) != 1) {
			_exit(1);
		}
		if (SSL_accept(s) == 1) {
			/* until the client's close_notify (or EOF) */
			while (SSL_read(s, buf, sizeof(buf)) > 0) {
				;
			}
			(void)SSL_shutdown(s);
		}
		SSL_free(s);
		close(fd);
		ERR_clear_error();
	}
	_exit(0);
}

static int
cmd_tls_loopback(int n)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct tls_party ts, tc;
	struct rusage ru;
	SSL_CTX *sctx, *cctx;
	X509 *root;
	uint8_t *der;
	size_t len;
	double t0, secs, cpu_us;
	pid_t pid;
	int lfd, fd, i, st, ok = 0, one = 1;
	SSL *c;

	setup_fixture();
	tls_party(&ts, ca, "server", NULL, 100);
	tls_party(&tc, ca, "reader", "RDR-0001", 101);
	if (hs_ca_root_der(ca, &der, &len) != 0 ||
	    (root = x509_der(der, len)) == NULL) {
		fx_die("root");
	}
	free(der);
	sctx = tls_ctx(true, &ts, root);
	cctx = tls_ctx(false, &tc, root);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 128) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
		fx_die("listen on 127.0.0.1");
	}
	if ((pid = fork()) < 0) {
		fx_die("fork");
	}
	if (pid == 0) {
		tls_serve(sctx, lfd, n);
	}
	close(lfd);
	t0 = now_s();
	for (i = 0; i < n; i++) {
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
		    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			fx_die("connect to 127.0.0.1");
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if ((c = SSL_new(cctx)) == NULL || SSL_set_fd(c, fd) != 1) {
			fx_die("SSL_new");
		}
		if (SSL_connect(c) == 1) {
			ok++;
			(void)SSL_shutdown(c);
		}
		SSL_free(c);
		close(fd);
		ERR_clear_error();
	}
	secs = now_s() - t0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			fx_die("waitpid");
		}
	}
	(void)getrusage(RUSAGE_CHILDREN, &ru);
	cpu_us = (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec +
	    (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
	if (ok != n || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "bench-hs tls-loopback: %d of %d handshakes\n",
		    ok, n);
		return 1;
	}
	printf("TLS 1.3 mutual auth over loopback (OpenSSL, P-256, server in "
	    "one thread, 1 client thread, %d handshakes): %.0f handshakes/s, "
	    "server %.0f us of CPU per handshake\n", n, n / secs, cpu_us / n);
	return 0;
}

/* ------------------------------------------------------------ mkreader */

static int
cmd_mkreader(const char *dir, const char *serial, const char *prefix,
    unsigned long long certno)
{
	struct hs_ca *c = NULL;
	EVP_PKEY *k;
	uint8_t pub[65], *der;
	size_t n, len;
	char kp[600], cp[600], p1[600], p2[600];
	BIO *b;
	struct hs_ca_req req = { .pub = pub, .role = "reader",
	    .serial = serial, .certno = certno, .backdate_s = 60,
	    .valid_s = 86400 };

	snprintf(p1, sizeof(p1), "%s/root.key", dir);
	snprintf(p2, sizeof(p2), "%s/root.pem", dir);
	snprintf(kp, sizeof(kp), "%s.key", prefix);
	snprintf(cp, sizeof(cp), "%s.pem", prefix);
	if (hs_ca_load(p1, p2, &c) != 0 ||
	    (k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
	    EVP_PKEY_get_octet_string_param(k,
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub), &n) != 1 ||
	    hs_ca_issue(c, &req, &der, &len) != 0 ||
	    hs_ca_write_pem(der, len, false, cp) != 0 ||
	    (b = BIO_new_file(kp, "wb")) == NULL ||
	    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1) {
		fprintf(stderr, "bench-hs mkreader failed\n");
		return 1;
	}
	BIO_free(b);
	free(der);
	EVP_PKEY_free(k);
	hs_ca_free(c);
	return 0;
}

/* ------------------------------------------------------------ flood */

struct flood {
	char		 host[64], port[16];
	struct hs_client_cfg cfg;
	struct hs_chain	 chain;
	struct hs_trust	*trust;
	struct key	 ko;
	struct ml_p256_key *key;
	volatile int	 stop;
	atomic_ullong	 legit_ok, legit_fail, forged_sent, forged_refused;
	double		 forge_rate;	/* per second, all forger threads */
	double		 legit_rate;	/* per second, all legit threads; 0 max */
	int		 nlegit;
	int		 nforgers;
	uint8_t		 auth_tmpl[HS_MAX_HS_MSG];	/* a real READER_AUTH */
	size_t		 auth_len;
	uint8_t		 keyreq[256];
	size_t		 keyreq_len;
};

static int
tcp_connect(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int fd, one = 1;

	if (getaddrinfo(host, port, &hints, &res) != 0) {
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

/* The clients stand in for remote machines: run them below the server's
 * priority so that the 2-vCPU test machine measures the server, not the
 * scheduler's split between it and its own attackers. */
static void
client_nice(void)
{
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
}

static void *
legit_thread(void *arg)
{
	struct flood *f = arg;
	struct hs_chan *ch;
	int alert;
	double next = now_s(), interval = f->legit_rate > 0 ?
	    f->nlegit / f->legit_rate : 0;

	client_nice();
	while (!f->stop) {
		if (interval > 0) {
			double t = now_s();

			if (t < next) {
				usleep((useconds_t)((next - t) * 1e6));
				continue;
			}
			next += interval;
			if (next < t - 1.0) {
				next = t;
			}
		}
		if (hs_connect(f->host, f->port, &f->cfg, &ch, &alert) == 0) {
			atomic_fetch_add(&f->legit_ok, 1);
			hs_chan_close(ch);
		} else {
			atomic_fetch_add(&f->legit_fail, 1);
		}
	}
	return NULL;
}

/*
 * A forger: in batches of FORGE_BATCH connections, KEYREQ on each, read
 * R1, send the recorded READER_AUTH with that R1 and a corrupted signature
 * (valid certificate: the server's most expensive refusal), read the
 * ALERT.  Paced to f->forge_rate over all forger threads.
 */
#define FORGE_BATCH	16
static void *
forge_thread(void *arg)
{
	struct flood *f = arg;
	uint8_t frame[4 + HS_MAX_HS_MSG], *body = NULL;
	size_t len;
	double interval = f->nforgers * FORGE_BATCH / f->forge_rate,
	    next = now_s();
	int fd[FORGE_BATCH], i;

	client_nice();
	while (!f->stop) {
		double t = now_s();

		if (t < next) {
			usleep((useconds_t)((next - t) * 1e6));
			continue;
		}
		next += interval;
		if (next < t - 1.0) {
			next = t;	/* do not burst after a stall */
		}
		frame[0] = 0; frame[1] = 0; frame[2] = 0;
		frame[3] = (uint8_t)f->keyreq_len;
		memcpy(frame + 4, f->keyreq, f->keyreq_len);
		for (i = 0; i < FORGE_BATCH; i++) {
			fd[i] = tcp_connect(f->host, f->port);
			if (fd[i] >= 0 && hs_io_write_all(fd[i], frame,
			    4 + f->keyreq_len, 2000) != 0) {
				close(fd[i]);
				fd[i] = -1;
			}
		}
		frame[0] = (uint8_t)(f->auth_len >> 24);
		frame[1] = (uint8_t)(f->auth_len >> 16);
		frame[2] = (uint8_t)(f->auth_len >> 8);
		frame[3] = (uint8_t)f->auth_len;
		memcpy(frame + 4, f->auth_tmpl, f->auth_len);
		frame[4 + f->auth_len - 3] ^= 0x5a;		/* forged sig */
		for (i = 0; i < FORGE_BATCH; i++) {
			if (fd[i] < 0) {
				continue;
			}
			if (hs_io_read_frame(fd[i], HS_MAX_HS_MSG, 2000, &body,
			    &len) != 0 || len != 1 + HS_R_LEN) {
				free(body);
				body = NULL;
				close(fd[i]);
				fd[i] = -1;
				continue;
			}
			memcpy(frame + 4 + 1, body + 1, HS_R_LEN);	/* fresh R1 */
			free(body);
			body = NULL;
			atomic_fetch_add(&f->forged_sent, 1);
			if (hs_io_write_all(fd[i], frame, 4 + f->auth_len,
			    2000) != 0) {
				close(fd[i]);
				fd[i] = -1;
			}
		}
		for (i = 0; i < FORGE_BATCH; i++) {
			if (fd[i] < 0) {
				continue;
			}
			if (hs_io_read_frame(fd[i], HS_MAX_HS_MSG, 2000, &body,
			    &len) == 0 && len == 2 && body[0] == HS_ALERT) {
				atomic_fetch_add(&f->forged_refused, 1);
			}
			free(body);
			body = NULL;
			close(fd[i]);
		}
	}
	return NULL;
}

/* Record a real KEYREQ + READER_AUTH to use as the forgers' template. */
static int
make_template(struct flood *f)
{
	struct hs *c = NULL;
	struct ml_wr o = ml_wr_dyn(1 << 16);
	struct ml_rd rd, b;
	uint8_t ch[1 + HS_R_LEN] = { HS_CHALLENGE };
	int r = ML_ERR_INTERNAL;

	ML_TRY(hs_client_new(&f->cfg, &c));
	ML_TRY(hs_advance(c, NULL, 0, &o));
	rd = ML_RD_INIT(o.p, o.len);
	ML_TRY(hs_frame_next(&rd, HS_MAX_FRAME, &b));
	f->keyreq_len = ml_rd_left(&b);
	memcpy(f->keyreq, ml_rd_ptr(&b), f->keyreq_len);
	ml_wr_clear(&o);
	ML_TRY(hs_advance(c, ch, sizeof(ch), &o));
	rd = ML_RD_INIT(o.p, o.len);
	ML_TRY(hs_frame_next(&rd, HS_MAX_FRAME, &b));
	f->auth_len = ml_rd_left(&b);
	memcpy(f->auth_tmpl, ml_rd_ptr(&b), f->auth_len);
	r = 0;
out:
	hs_free(c);
	ml_wr_free(&o);
	return r;
}

static double
flood_phase(struct flood *f, int nlegit, int nforge, double secs,
    double *ret_forged_rate)
{
	pthread_t th[64];
	int i, n = 0;
	unsigned long long ok0, fs0;
	double t0, dt;

	f->stop = 0;
	f->nforgers = nforge;
	f->nlegit = nlegit;
	ok0 = atomic_load(&f->legit_ok);
	fs0 = atomic_load(&f->forged_sent);
	t0 = now_s();
	for (i = 0; i < nlegit; i++) {
		pthread_create(&th[n++], NULL, legit_thread, f);
	}
	for (i = 0; i < nforge; i++) {
		pthread_create(&th[n++], NULL, forge_thread, f);
	}
	usleep((useconds_t)(secs * 1e6));
	f->stop = 1;
	for (i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
	}
	dt = now_s() - t0;
	*ret_forged_rate = (atomic_load(&f->forged_sent) - fs0) / dt;
	return (atomic_load(&f->legit_ok) - ok0) / dt;
}

static int
cmd_flood(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "server", required_argument, NULL, 's' },
		{ "ca", required_argument, NULL, 'a' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "threads", required_argument, NULL, 't' },
		{ "ratio", required_argument, NULL, 'r' },
		{ "forgers", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	struct flood *f = calloc(1, sizeof(*f));
	const char *server = "127.0.0.1:7443", *cap = NULL, *cert = NULL,
	    *keyp = NULL;
	double secs = 5, ratio = 10, base, calm, under, sat, frate, frate0,
	    frate2;
	int threads = 2, forgers = 4, c;
	char *colon;
	BIO *b;
	EVP_PKEY *pk;
	uint8_t priv[32];
	BIGNUM *bn = NULL;
	struct hs_certinfo ci;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': server = optarg; break;
		case 'a': cap = optarg; break;
		case 'c': cert = optarg; break;
		case 'k': keyp = optarg; break;
		case 'S': secs = atof(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'r': ratio = atof(optarg); break;
		case 'f': forgers = atoi(optarg); break;
		default: return 2;
		}
	}
	if (cap == NULL || cert == NULL || keyp == NULL) {
		fprintf(stderr, "bench-hs flood: --ca --cert --key needed\n");
		return 2;
	}
	snprintf(f->host, sizeof(f->host), "%s", server);
	if ((colon = strrchr(f->host, ':')) == NULL) {
		return 2;
	}
	*colon = '\0';
	snprintf(f->port, sizeof(f->port), "%s", colon + 1);
	if (hs_trust_load(cap, NULL, &f->trust) != 0 ||
	    hs_chain_load(cert, &f->chain) != 0 ||
	    hs_cert_facts(f->chain.blob[0].p, f->chain.blob[0].len, &ci) != 0 ||
	    (b = BIO_new_file(keyp, "rb")) == NULL ||
	    (pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL ||
	    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &bn) != 1 ||
	    BN_bn2binpad(bn, priv, 32) != 32 ||
	    ml_p256_key_from_priv(priv, &f->key) != 0) {
		fprintf(stderr, "bench-hs flood: cannot load credentials\n");
		return 1;
	}
	BIO_free(b);
	key_soft_init(&f->ko, f->key);
	f->cfg.flow = HS_FLOW_A;
	f->cfg.kind = HS_KIND_READER;
	f->cfg.cred.key = &f->ko;
	f->cfg.cred.chain = f->chain.blob;
	f->cfg.cred.nchain = f->chain.n;
	{
		static uint8_t pub[65];
		memcpy(pub, ci.pub, 65);
		f->cfg.cred.pub = pub;
		f->cfg.cred.certno = strdup(ci.certno);
	}
	f->cfg.trust = f->trust;
	f->cfg.serial = strdup(ci.serial);
	f->cfg.timeout_ms = 5000;
	if (make_template(f) != 0) {
		fprintf(stderr, "bench-hs flood: template failed\n");
		return 1;
	}
	/* 1. capacity: closed-loop legitimate clients, no flood */
	f->legit_rate = 0;
	base = flood_phase(f, threads, 0, secs, &frate0);
	/* 2. a steady legitimate load at 1/5 of that, alone ... */
	f->legit_rate = base / 5;
	calm = flood_phase(f, threads, 0, secs, &frate0);
	/* 3. ... and with forged first messages at 10x it */
	f->forge_rate = ratio * f->legit_rate;
	under = flood_phase(f, threads, forgers, secs, &frate);
	/* 4. saturated: closed-loop legitimate clients + 10x base forged */
	f->legit_rate = 0;
	f->forge_rate = ratio * base;
	sat = flood_phase(f, threads, forgers, secs, &frate2);
	printf("bench-hs flood: %s, flow A, %d legitimate client threads, "
	    "%d forger threads (batches of %d), %.0f s per phase, clients at "
	    "nice 10\n", server, threads, forgers, FORGE_BATCH, secs);
	printf("| phase | legitimate handshakes/s | forged first messages/s |\n");
	printf("| --- | --- | --- |\n");
	printf("| capacity (closed loop, no flood) | %.0f | 0 |\n", base);
	printf("| steady load %.0f/s offered, no flood | %.0f | 0 |\n",
	    base / 5, calm);
	printf("| steady load %.0f/s offered + forged at %.0fx | %.0f | %.0f |\n",
	    base / 5, ratio, under, frate);
	printf("| closed loop + forged at %.0fx capacity | %.0f | %.0f |\n",
	    ratio, sat, frate2);
	printf("legitimate rate kept under %.0fx flood: %.0f%% (steady load), "
	    "%.0f%% (saturated server); forged refused %llu of %llu; "
	    "legitimate failures %llu\n", ratio,
	    calm > 0 ? 100.0 * under / calm : 0,
	    base > 0 ? 100.0 * sat / base : 0,
	    (unsigned long long)atomic_load(&f->forged_refused),
	    (unsigned long long)atomic_load(&f->forged_sent),
	    (unsigned long long)atomic_load(&f->legit_fail));
	return 0;
}

int
main(int argc, char **argv)
{
	int n = 2000;

	if (argc > 1 && strcmp(argv[1], "mkreader") == 0) {
		const char *dir = NULL, *serial = NULL, *out = NULL;
		unsigned long long certno = 0x7000;
		int i;

		for (i = 2; i + 1 < argc; i += 2) {
			if (strcmp(argv[i], "--ca-dir") == 0) {
				dir = argv[i + 1];
			} else if (strcmp(argv[i], "--serial") == 0) {
				serial = argv[i + 1];
			} else if (strcmp(argv[i], "--out") == 0) {
				out = argv[i + 1];
			} else if (strcmp(argv[i], "--certno") == 0) {
				certno = strtoull(argv[i + 1], NULL, 16);
			}
		}
		if (dir == NULL || serial == NULL || out == NULL) {
			return 2;
		}
		return cmd_mkreader(dir, serial, out, certno);
	}
	if (argc > 1 && strcmp(argv[1], "flood") == 0) {
		return cmd_flood(argc - 1, argv + 1);
	}
	if (argc > 1 && strcmp(argv[1], "tls-loopback") == 0) {
		if (argc > 3 && strcmp(argv[2], "-n") == 0) {
			n = atoi(argv[3]);
		}
		return n > 0 ? cmd_tls_loopback(n) : 2;
	}
	if (argc > 1 && strcmp(argv[1], "inproc") == 0) {
		argc--;
		argv++;
	}
	if (argc > 2 && strcmp(argv[1], "-n") == 0) {
		n = atoi(argv[2]);
	}
	return cmd_inproc(n);
}
