/*
 * mon_check: play a compromised mintline-server worker against a real
 * mintline-monitor (SoftHSM2 key) and check that the monitor holds its
 * line (test-server-privsep.sh runs it):
 *
 *	mon_check MONITOR MODULE KEY_URI
 *
 * Prints one "ok"/"FAIL" line per check; exit 0 when all passed.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

int
main(int argc, char **argv)
{
	struct mon *m = NULL;
	struct hs_keyops ko;
	uint8_t md[ML_SHA256_LEN] = { 1, 2, 3 }, sig[ML_P256_SIG_LEN];
	uint8_t pub[ML_P256_PUB_LEN], sec[ML_P256_SECRET_LEN];
	int r;

	if (argc != 4) {
		fprintf(stderr, "usage: mon_check MONITOR MODULE KEY_URI\n");
		return 2;
	}
	expect(mon_start(argv[1], 2, argv[2], "pkcs11:token=x?pin-value=1",
	    0, &m), ML_ERR_ARG, "a key URI with pin-value is refused");
	if ((r = mon_start(argv[1], 2, argv[2], argv[3], 0, &m)) != 0) {
		printf("FAIL - monitor did not start: %s\n", ml_errname(r));
		return 1;
	}
	mon_keyops(m, &ko);
	mon_pub(m, pub);		/* a valid point to do ECDH with */

	expect(mon_pubkey(m, argv[3], pub), 0,
	    "MON_PUBKEY answered during start-up");
	mon_bind(1, MON_PHASE_PREAUTH);
	expect(ko.sign(ko.ctx, md, sig), 0, "session 1: SIGN_TRANSCRIPT");
	expect(ko.sign(ko.ctx, md, sig), ML_ERR_STATE,
	    "session 1: a second SIGN_TRANSCRIPT (MON_ONCE) refused");
	expect(ko.ecdh(ko.ctx, pub, sec), 0, "session 1: DECRYPT_KEYX");
	expect(ko.ecdh(ko.ctx, pub, sec), ML_ERR_STATE,
	    "session 1: a second DECRYPT_KEYX (MON_ONCE) refused");
	mon_bind(1, MON_PHASE_POSTAUTH);
	expect(ko.ecdh(ko.ctx, pub, sec), ML_ERR_STATE,
	    "session 1: DECRYPT_FEATURE before SESS_AUTH refused");
	expect(mon_sess_auth(m, 1), 0, "session 1: SESS_AUTH after a key op");
	expect(ko.ecdh(ko.ctx, pub, sec), 0, "session 1: DECRYPT_FEATURE");
	expect(ko.ecdh(ko.ctx, pub, sec), 0, "session 1: DECRYPT_FEATURE again");
	mon_bind(1, MON_PHASE_PREAUTH);
	expect(ko.sign(ko.ctx, md, sig), ML_ERR_STATE,
	    "session 1: SIGN_TRANSCRIPT after SESS_AUTH refused");

	expect(mon_sess_auth(m, 2), ML_ERR_STATE,
	    "session 2: SESS_AUTH without a key operation refused");
	mon_bind(3, MON_PHASE_PREAUTH);
	expect(ko.sign(ko.ctx, md, sig), 0, "session 3: SIGN_TRANSCRIPT");
	mon_bind(0, MON_PHASE_PREAUTH);
	expect(ko.sign(ko.ctx, md, sig), ML_ERR_STATE, "session id 0 refused");

	mon_sess_close(m, 1);
	usleep(100 * 1000);
	mon_bind(1, MON_PHASE_POSTAUTH);
	expect(ko.ecdh(ko.ctx, pub, sec), ML_ERR_STATE,
	    "session 1 after CLOSE: refused (an old id is not reopened)");
	mon_bind(1, MON_PHASE_PREAUTH);
	expect(ko.sign(ko.ctx, md, sig), ML_ERR_STATE,
	    "session 1 after CLOSE: SIGN_TRANSCRIPT refused");
	expect(mon_pubkey(m, argv[3], pub), ML_ERR_STATE,
	    "MON_PUBKEY after the first session refused");
	mon_bind(0, MON_PHASE_NONE);
	expect(ko.sign(ko.ctx, md, sig), ML_ERR_STATE,
	    "no session bound: refused in the worker already");
	mon_stop(m);
	return fails == 0 ? 0 : 1;
}
