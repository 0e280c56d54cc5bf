/*
 * mon_check: play a compromised mintline-server worker against a real
 * mintline-monitor (SoftHSM2 key) and check that the monitor holds its
 * line (test-server-privsep.sh runs it):
 *
 *	mon_check MONITOR MODULE KEY_URI
 *
 * Then, in this process, the monitor's key implementation (keys/key_p11.c)
 * losing its
 * token session: the module is finalized behind libp11's back (as an
 * HSM restart does), and the next sign must reconnect by itself.
 *
 * Prints one "ok"/"FAIL" line per check; exit 0 when all passed.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "key_p11.h"
#include "ml_err.h"
#include "ml_ossl.h"
#include "mon_client.h"

static int fails;

static void
expect(int got, int want, const char *what)
{
	if (got == want) {
		printf("ok   - %s (%s)\n", what, ml_errname(got));
	} else {
		printf("FAIL - %s: got %s, want %s\n", what, ml_errname(got),
		    ml_errname(want));
		fails++;
	}
}

/* The PKCS#11 entry points we need, without the PKCS#11 headers. */
typedef unsigned long ck_rv;
struct ck_version { unsigned char major, minor; };
struct ck_function_list {
	struct ck_version version;
	ck_rv (*C_Initialize)(void *);
	ck_rv (*C_Finalize)(void *);
};

/* Sign, lose the session (C_Finalize through our own dlopen handle of
 * the same module), sign again: key_p11 must reconnect and log in again. */
static void
reconnect_check(const char *module, const char *uri)
{
	struct key *k = NULL;
	struct ck_function_list *fl = NULL;
	ck_rv (*gfl)(struct ck_function_list **);
	uint8_t md[ML_SHA256_LEN] = { 9 }, sig[ML_P256_SIG_LEN];
	uint8_t pub[ML_P256_PUB_LEN];
	struct ml_p256_key *pk = NULL;
	void *h;

	expect(key_p11_open(module, uri, &k), 0, "key_p11: key open");
	if (k == NULL) {
		return;
	}
	expect(key_sign(k, md, sig), 0, "key_p11: sign");
	if ((h = dlopen(module, RTLD_NOW)) == NULL ||
	    (gfl = (ck_rv (*)(struct ck_function_list **))dlsym(h,
	    "C_GetFunctionList")) == NULL || gfl(&fl) != 0) {
		printf("FAIL - cannot reach the module's C_Finalize\n");
		fails++;
		key_free(k);
		return;
	}
	expect((int)fl->C_Finalize(NULL), 0,
	    "module finalized behind libp11 (session lost)");
	expect(key_sign(k, md, sig), 0,
	    "key_p11: sign after the session was lost (reconnected)");
	expect(key_p11_reconnects(k) == 1 ? 0 : ML_ERR_STATE, 0,
	    "key_p11: one reconnect counted");
	expect(key_pub(k, pub), 0, "key_p11: public key");
	expect(ml_p256_key_from_pub(pub, sizeof(pub), &pk), 0, "public key loads");
	if (pk != NULL) {
		expect(ml_p256_verify_digest(pk, md, sizeof(md), sig,
		    sizeof(sig)), 0,
		    "the signature after the reconnect verifies");
		ml_p256_key_free(pk);
	}
	key_free(k);
	dlclose(h);
}

/* Signatures from several worker threads at once (the monitor serves its
 * channels on several threads, HSM calls outside its lock). */
#define RACERS	8

struct racer {
	const struct key	*k;
	uint64_t		 sess;
	pthread_t		 th;
	int			 rc;
};

static void *
racer_main(void *arg)
{
	struct racer *a = arg;
	uint8_t md[ML_SHA256_LEN] = { 7 }, sig[ML_P256_SIG_LEN];

	mon_bind(a->sess, MON_PHASE_PREAUTH, NULL);
	a->rc = key_sign(a->k, md, sig);
	return NULL;
}

/* n racers, on sessions first, first + step, ...; returns how many got a
 * signature. */
static int
race(const struct key *k, uint64_t first, uint64_t step)
{
	struct racer a[RACERS];
	int i, nok = 0;

	for (i = 0; i < RACERS; i++) {
		a[i] = (struct racer){ .k = k, .sess = first + (uint64_t)i * step };
		pthread_create(&a[i].th, NULL, racer_main, &a[i]);
	}
	for (i = 0; i < RACERS; i++) {
		pthread_join(a[i].th, NULL);
		nok += a[i].rc == 0;
	}
	return nok;
}

int
main(int argc, char **argv)
{
	struct mon *m = NULL;
	struct key_provider prov;
	struct key *ko = NULL, *seal = NULL;
	uint8_t md[ML_SHA256_LEN] = { 1, 2, 3 }, sig[ML_P256_SIG_LEN];
	uint8_t pub[ML_P256_PUB_LEN], sec[ML_P256_SECRET_LEN];
	int r;

	if (argc != 4) {
		fprintf(stderr, "usage: mon_check MONITOR MODULE KEY_URI\n");
		return 2;
	}
	expect(mon_start(argv[1], 2, argv[2], "pkcs11:token=x?pin-value=1", NULL,
	    0, &m), ML_ERR_ARG, "a key URI with pin-value is refused");
	if ((r = mon_start(argv[1], RACERS, argv[2], argv[3], NULL, 0, &m)) != 0) {
		printf("FAIL - monitor did not start: %s\n", ml_errname(r));
		return 1;
	}
	mon_key_provider(m, &prov);
	expect(key_open(&prov, argv[3], &ko), 0,
	    "the worker's provider opens the server key (monitor client)");
	if (ko == NULL) {
		mon_stop(m);
		return 1;
	}
	expect(key_pub(ko, pub), 0, "its public key, from MON_HELLO");
	expect(key_open(&prov, "pkcs11:token=x;object=seal", &seal),
	    ML_ERR_NOT_FOUND, "no seal key in the monitor: none to open");

	expect(mon_pubkey(m, argv[3], pub), 0,
	    "MON_PUBKEY answered during start-up");
	mon_bind(1, MON_PHASE_PREAUTH, NULL);
	expect(key_sign(ko, md, sig), 0, "session 1: SIGN_TRANSCRIPT");
	expect(key_sign(ko, md, sig), ML_ERR_STATE,
	    "session 1: a second SIGN_TRANSCRIPT (MON_ONCE) refused");
	expect(key_ecdh(ko, pub, sec), 0, "session 1: DECRYPT_KEYX");
	expect(key_ecdh(ko, pub, sec), ML_ERR_STATE,
	    "session 1: a second DECRYPT_KEYX (MON_ONCE) refused");
	mon_bind(1, MON_PHASE_POSTAUTH, NULL);
	expect(key_ecdh(ko, pub, sec), ML_ERR_STATE,
	    "session 1: DECRYPT_FEATURE before SESS_AUTH refused");
	expect(mon_sess_auth(m, 1), 0, "session 1: SESS_AUTH after a key op");
	expect(key_ecdh(ko, pub, sec), 0, "session 1: DECRYPT_FEATURE");
	expect(key_ecdh(ko, pub, sec), 0, "session 1: DECRYPT_FEATURE again");
	mon_bind(1, MON_PHASE_PREAUTH, NULL);
	expect(key_sign(ko, md, sig), ML_ERR_STATE,
	    "session 1: SIGN_TRANSCRIPT after SESS_AUTH refused");

	expect(mon_sess_auth(m, 2), ML_ERR_STATE,
	    "session 2: SESS_AUTH without a key operation refused");
	mon_bind(3, MON_PHASE_PREAUTH, NULL);
	expect(key_sign(ko, md, sig), 0, "session 3: SIGN_TRANSCRIPT");
	{
		/* found by fuzz_mon_proto: a refused key op is not a use */
		uint8_t bad[ML_P256_PUB_LEN];

		memcpy(bad, pub, sizeof(bad));
		bad[ML_P256_PUB_LEN - 1] ^= 0x01;	/* off the curve */
		mon_bind(4, MON_PHASE_PREAUTH, NULL);
		expect(key_ecdh(ko, bad, sec), ML_ERR_CRYPTO,
		    "session 4: DECRYPT_KEYX with a point off the curve refused");
		expect(mon_sess_auth(m, 4), ML_ERR_STATE,
		    "session 4: SESS_AUTH after only a refused key op refused");
	}
	{
		/* the handshake's end told before the first POSTAUTH key op
		 * (mon_bind's auth_owed), not at once */
		bool owed = true;

		mon_bind(5, MON_PHASE_PREAUTH, NULL);
		expect(key_sign(ko, md, sig), 0, "session 5: SIGN_TRANSCRIPT");
		mon_bind(5, MON_PHASE_POSTAUTH, &owed);
		expect(key_ecdh(ko, pub, sec), 0,
		    "session 5: DECRYPT_FEATURE sends the owed SESS_AUTH first");
		expect(owed ? ML_ERR_STATE : 0, 0,
		    "session 5: SESS_AUTH no longer owed");
		expect(key_ecdh(ko, pub, sec), 0,
		    "session 5: DECRYPT_FEATURE again, no second SESS_AUTH");
		owed = true;
		mon_bind(6, MON_PHASE_POSTAUTH, &owed);
		expect(key_ecdh(ko, pub, sec), ML_ERR_STATE,
		    "session 6: SESS_AUTH owed, no key op in its handshake: "
		    "DECRYPT_FEATURE refused");
		expect(owed ? 0 : ML_ERR_STATE, 0,
		    "session 6: SESS_AUTH still owed after the refusal");
	}
	expect(race(ko, 100, 1) == RACERS ? 0 : ML_ERR_STATE, 0,
	    "8 sessions sign at once from 8 threads: all answered");
	expect(race(ko, 200, 0) == 1 ? 0 : ML_ERR_STATE, 0,
	    "8 threads race one session's SIGN_TRANSCRIPT: exactly one answered");
	mon_bind(0, MON_PHASE_PREAUTH, NULL);
	expect(key_sign(ko, md, sig), ML_ERR_STATE, "session id 0 refused");

	mon_sess_close(m, 1);
	mon_sess_close(m, 3);
	mon_close_flush(m, true);	/* one note, both ids */
	usleep(100 * 1000);
	mon_bind(3, MON_PHASE_POSTAUTH, NULL);
	expect(mon_sess_auth(m, 3), ML_ERR_STATE,
	    "session 3 after CLOSE (second id of one note): SESS_AUTH refused");
	mon_bind(1, MON_PHASE_POSTAUTH, NULL);
	expect(key_ecdh(ko, pub, sec), ML_ERR_STATE,
	    "session 1 after CLOSE: refused (an old id is not reopened)");
	mon_bind(1, MON_PHASE_PREAUTH, NULL);
	expect(key_sign(ko, md, sig), ML_ERR_STATE,
	    "session 1 after CLOSE: SIGN_TRANSCRIPT refused");
	expect(mon_pubkey(m, argv[3], pub), ML_ERR_STATE,
	    "MON_PUBKEY after the first session refused");
	mon_bind(0, MON_PHASE_NONE, NULL);
	expect(key_sign(ko, md, sig), ML_ERR_STATE,
	    "no session bound: refused in the worker already");
	key_free(ko);
	mon_stop(m);
	reconnect_check(argv[2], argv[3]);
	return fails == 0 ? 0 : 1;
}
