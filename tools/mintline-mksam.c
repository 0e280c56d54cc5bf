/*
 * mintline-mksam: manufacture a SAM module image (ID-10) and key it
 * through APDUs, as a SAM factory would.
 *
 *	mintline-mksam --sam-key FILE [--serial S] [-q] IMAGE
 *
 * The image is a chip of kind "sam" (chip-applet/applet_sam.c) holding the
 * SAM key read from FILE (32 bytes as 64 hex digits, the key the ID cards
 * were made with: mintline-mkidcard --sam-key), locked.  Served by
 * mintline-chip behind pcscd, it is what the server's pcsc: SAM back-end
 * talks to.  Exit status: 0 made, 1 failed, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chip.h"
#include "chip_proto.h"
#include "idcard_format.h"
#include "ml_err.h"
#include "ml_log.h"
#include "ml_ossl.h"
#include "ml_secret.h"
#include "ml_wipe.h"
#include "tool_chip.h"

static void
ms_usage(FILE *f)
{
	fprintf(f, "usage: mintline-mksam --sam-key FILE [--serial S] [-q] "
	    "IMAGE\n\n"
	    "Make a SAM module image (chip kind sam) keyed with the 32-byte\n"
	    "SAM key in FILE (64 hex digits), and lock it.\n\n"
	    "  -k, --sam-key FILE   the SAM key (64 hex digits, mode 0600)\n"
	    "  -s, --serial S       chip serial (default: SAM- and 8 random hex)\n"
	    "  -q, --quiet          print nothing on success\n"
	    "  -h, --help\n");
}

/* The SAM key file of mintline-mkidcard (common/ml_secret.c's format). */
static int
ms_read_key(const char *path, uint8_t ret_key[static IDC_SAM_KEY_LEN])
{
	int r;

	if ((r = ml_keyfile_read(path, ret_key, IDC_SAM_KEY_LEN)) != 0) {
		fprintf(stderr, "mintline-mksam: SAM key: %s\n", ml_errmsg(r));
	}
	return r;
}

/* Manufacture, SELECT (tool_chip_open), PUT SAM KEY, LOCK. */
static int
ms_run(const char *key_path, const char *serial, const char *image)
{
	uint8_t key[IDC_SAM_KEY_LEN], rnd[4];
	char sbuf[CHIP_SERIAL_LEN + 1], kpath[4096];
	struct tool_chip tc = { 0 };
	bool made = false;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ms_read_key(key_path, key));
	if (serial == NULL) {
		ML_TRY(ml_rand(rnd, sizeof(rnd)));
		snprintf(sbuf, sizeof(sbuf), "SAM-%02X%02X%02X%02X", rnd[0],
		    rnd[1], rnd[2], rnd[3]);
		serial = sbuf;
	}
	if ((r = chip_manufacture(image, CHIP_KIND_SAM, serial)) != 0) {
		fprintf(stderr, "mintline-mksam: %s: %s\n", image,
		    ml_errmsg(r));
		goto out;
	}
	made = true;
	ML_TRY(tool_chip_open(&tc, image));
	ML_TRY(tool_chip_cmd(&tc, CLA_PROP, INS_SAM_PUT_KEY, 0, 0, key,
	    sizeof(key)));
	ML_TRY(tool_chip_cmd(&tc, CLA_PROP, INS_LOCK, 0, 0, NULL, 0));
	r = 0;
out:
	tool_chip_close(&tc);
	if (r != 0 && made) {
		/* a half-keyed SAM is no SAM: take it away */
		snprintf(kpath, sizeof(kpath), "%s.key", image);
		(void)unlink(image);
		(void)unlink(kpath);
	}
	ml_wipe(key, sizeof(key));
	return r;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "sam-key",	required_argument, NULL, 'k' },
		{ "serial",	required_argument, NULL, 's' },
		{ "quiet",	no_argument,	   NULL, 'q' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL,		0,		   NULL, 0 },
	};
	const char *key = NULL, *serial = NULL;
	bool quiet = false;
	int ch, r;

	ml_log_set_ident("mintline-mksam");
	while ((ch = getopt_long(argc, argv, "k:s:qh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			key = optarg;
			break;
		case 's':
			serial = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			ms_usage(stdout);
			return 0;
		default:
			ms_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1 || key == NULL) {
		ms_usage(stderr);
		return 2;
	}
	if ((r = ms_run(key, serial, argv[optind])) != 0) {
		fprintf(stderr, "mintline-mksam: %s: failed: %s\n",
		    argv[optind], ml_errmsg(r));
		return 1;
	}
	if (!quiet) {
		printf("%s: SAM keyed and locked\n", argv[optind]);
	}
	return 0;
}
