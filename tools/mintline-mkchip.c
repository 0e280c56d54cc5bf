/*
 * mintline-mkchip: manufacture a blank chip image (chip_manufacture()).
 *
 *	mintline-mkchip KIND SERIAL IMAGE
 *
 * KIND is reader, note or idcard.  IMAGE must not exist; the per-chip device
 * key goes to IMAGE.key next to it.  Exit status: 0 made, 1 failed, 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "chip.h"
#include "ml_err.h"
#include "ml_log.h"

static void
mk_usage(FILE *f)
{
	fprintf(f,
	    "usage: mintline-mkchip [--verbose] KIND SERIAL IMAGE\n"
	    "\n"
	    "Manufacture a blank chip image at IMAGE (which must not exist).\n"
	    "KIND is reader, note or idcard; SERIAL is 1..%d printable\n"
	    "characters.  The device key is written to IMAGE.key.\n",
	    CHIP_SERIAL_LEN);
}

/* Printable ASCII without leading/trailing blanks, 1..CHIP_SERIAL_LEN. */
static int
mk_check_serial(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > CHIP_SERIAL_LEN || s[0] == ' ' || s[n - 1] == ' ') {
		return ML_ERR_ARG;
	}
	for (i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e) {
			return ML_ERR_ARG;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "verbose",	no_argument,	NULL, 'v' },
		{ "help",	no_argument,	NULL, 'h' },
		{ NULL,		0,		NULL, 0 },
	};
	enum chip_kind kind;
	const char *serial, *image;
	int ch, r;

	ml_log_set_ident("mintline-mkchip");
	while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'v':
			ml_log_set_level(ML_LOG_DEBUG);
			break;
		case 'h':
			mk_usage(stdout);
			return 0;
		default:
			mk_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 3) {
		mk_usage(stderr);
		return 2;
	}
	serial = argv[optind + 1];
	image = argv[optind + 2];
	if ((kind = chip_kind_from_name(argv[optind])) == 0) {
		fprintf(stderr, "mintline-mkchip: unknown kind %s "
		    "(reader, note, idcard)\n", argv[optind]);
		return 2;
	}
	if (mk_check_serial(serial) != 0) {
		fprintf(stderr, "mintline-mkchip: serial must be 1..%d "
		    "printable characters\n", CHIP_SERIAL_LEN);
		return 2;
	}
	if ((r = chip_manufacture(image, kind, serial)) != 0) {
		fprintf(stderr, "mintline-mkchip: %s: %s\n", image,
		    ml_errmsg(r));
		return 1;
	}
	return 0;
}
