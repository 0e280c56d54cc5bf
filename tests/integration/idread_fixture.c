/*
 * idread_fixture: set-up steps of the ID-reading integration tests that
 * no shipped tool does (yet): a personalised reader secure chip on an
 * in-process line, with a key pair made inside it.
 *
 *	idread_fixture init-reader DIR multi|single [PUB.der [SERIAL]]
 *
 * DIR gets reader.img at position 0 (pos-00), "positions" = 2, and the
 * PINs in DIR/pin (user, 1234) and DIR/so-pin (87654321).  With PUB.der, a
 * P-256 key pair is generated inside the chip and its public key written
 * as a DER SubjectPublicKeyInfo (for mintline-ca issue --pub).  The chip
 * serial is SERIAL, or RDR-IDR-0001.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chip.h"
#include "chip_proto.h"
#include "chiplink.h"
#include "ml_err.h"
#include "ml_ossl.h"

#include "idr_reader.h"

#define SO_PIN		"87654321"
#define USER_PIN	"1234"

static int
put(const char *dir, const char *name, const void *p, size_t n)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL) {
		return ML_ERR_IO;
	}
	if (fwrite(p, 1, n, f) != n) {
		fclose(f);
		return ML_ERR_IO;
	}
	return fclose(f) == 0 ? 0 : ML_ERR_IO;
}

int
main(int argc, char **argv)
{
	static const uint8_t spki_p256[26] = {
		0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
		0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
		0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
	};
	struct idr_reader_cfg rc = { .reader_slot = 0, .card_slot = 1,
	    .pin = USER_PIN };
	struct chiplink *l = NULL;
	struct idr_reader *ir = NULL;
	uint8_t pub[ML_P256_PUB_LEN], der[sizeof(spki_p256) + ML_P256_PUB_LEN];
	char img[600], spec[600];
	uint8_t mode;
	FILE *f;
	int r;

	if (argc < 4 || argc > 6 || strcmp(argv[1], "init-reader") != 0) {
		fprintf(stderr, "usage: idread_fixture init-reader DIR "
		    "multi|single [PUB.der [SERIAL]]\n");
		return 2;
	}
	mode = strcmp(argv[3], "single") == 0 ? CACHE_MODE_SINGLE :
	    CACHE_MODE_MULTI;
	snprintf(img, sizeof(img), "%s/reader.img", argv[2]);
	snprintf(spec, sizeof(spec), "inproc:%s", argv[2]);
	ML_TRY(put(argv[2], "positions", "2\n", 2));
	ML_TRY(put(argv[2], "pin", USER_PIN "\n", strlen(USER_PIN) + 1));
	ML_TRY(put(argv[2], "so-pin", SO_PIN "\n", strlen(SO_PIN) + 1));
	ML_TRY(chip_manufacture(img, CHIP_KIND_READER,
	    argc == 6 ? argv[5] : "RDR-IDR-0001"));
	ML_TRY(chiplink_open(spec, &l));
	ML_TRY(chiplink_inproc_feed(l, 0, img));
	ML_TRY(idr_reader_personalize(l, 0, SO_PIN, USER_PIN, mode));
	if (argc >= 5) {
		ML_TRY(idr_reader_open(l, &rc, &ir));
		ML_TRY(idr_reader_genkey(ir, pub));
		memcpy(der, spki_p256, sizeof(spki_p256));
		memcpy(der + sizeof(spki_p256), pub, sizeof(pub));
		ML_ENSURE((f = fopen(argv[4], "wb")) != NULL, ML_ERR_IO);
		ML_ENSURE(fwrite(der, 1, sizeof(der), f) == sizeof(der),
		    ML_ERR_IO);
		ML_ENSURE(fclose(f) == 0, ML_ERR_IO);
	}
	r = 0;
out:
	idr_reader_close(ir);
	chiplink_close(l);
	if (r != 0) {
		fprintf(stderr, "idread_fixture: %s\n", ml_strerror(r));
		return 1;
	}
	return 0;
}
