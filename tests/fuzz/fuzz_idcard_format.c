/*
 * libFuzzer harness: the ID-card formats of chip-applet/idcard_format.c,
 * called directly (fuzz_chip reaches them only through the applet's
 * commands): the card configuration TLVs (idc_config_decode(), read by the
 * reader from a card) and the ID information TLVs (idc_info_decode(), the
 * plaintext of a card's sealed data, and idc_data_open() on the sealed
 * blob itself).
 *
 * Input: byte 0 selects the parser (mod 3), the rest is its input.
 *   0 configuration; 1 ID information; 2 a sealed blob for idc_data_open()
 *     under a fixed SAM key and card serial.
 *
 * Invariants beyond "no crash, no sanitizer report": whatever decodes
 * encodes again (the encoder applies the same checks), and decoding that
 * encoding gives the same structure; ID information that decodes also
 * survives idc_data_seal() + idc_data_open() unchanged.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "idcard_format.h"
#include "ml_wr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t sam_key[IDC_SAM_KEY_LEN] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};
static const uint8_t card_serial[IDC_SERIAL_LEN] = "IDC00001";

static void
fuzz_config(const uint8_t *p, size_t n)
{
	struct idc_config a, b;
	uint8_t buf[512];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	if (idc_config_decode(p, n, &a) != 0) {
		return;
	}
	if (a.appdata_len > IDC_APPDATA_MAX ||
	    memchr(a.proto, '\0', sizeof(a.proto)) == NULL) {
		abort();
	}
	if (idc_config_encode(&a, &w) != 0 ||
	    idc_config_decode(w.p, w.len, &b) != 0 ||
	    memcmp(a.serial, b.serial, sizeof(a.serial)) != 0 ||
	    a.appdata_len != b.appdata_len ||
	    memcmp(a.appdata, b.appdata, a.appdata_len) != 0 ||
	    strcmp(a.proto, b.proto) != 0 ||
	    a.bitrate_kbps != b.bitrate_kbps || a.max_frame != b.max_frame) {
		abort();
	}
}

static bool
info_eq(const struct idc_info *a, const struct idc_info *b)
{
	return strcmp(a->name, b->name) == 0 && a->sex == b->sex &&
	    strcmp(a->nation, b->nation) == 0 &&
	    strcmp(a->birth, b->birth) == 0 &&
	    strcmp(a->address, b->address) == 0 &&
	    strcmp(a->idnum, b->idnum) == 0 &&
	    strcmp(a->authority, b->authority) == 0 &&
	    strcmp(a->valid_from, b->valid_from) == 0 &&
	    strcmp(a->valid_until, b->valid_until) == 0 &&
	    a->photo_len == b->photo_len &&
	    memcmp(a->photo, b->photo, a->photo_len) == 0 &&
	    a->finger_len == b->finger_len &&
	    memcmp(a->finger, b->finger, a->finger_len) == 0;
}

static void
fuzz_info(const uint8_t *p, size_t n)
{
	static struct idc_info a, b;
	struct ml_wr w = ml_wr_dyn(2 * IDC_INFO_MAX);
	struct ml_wr s = ml_wr_dyn(2 * IDC_INFO_MAX + IDC_BLOB_OVERHEAD);

	if (idc_info_decode(p, n, &a) != 0) {
		goto out;
	}
	if (a.photo_len > IDC_PHOTO_MAX || a.finger_len > IDC_FINGER_MAX) {
		abort();
	}
	if (idc_info_encode(&a, &w) != 0 ||
	    idc_info_decode(w.p, w.len, &b) != 0 || !info_eq(&a, &b)) {
		abort();
	}
	idc_info_clear(&b);
	if (idc_data_seal(sam_key, card_serial, &a, &s) != 0 ||
	    idc_data_open(sam_key, card_serial, s.p, s.len, &b) != 0 ||
	    !info_eq(&a, &b)) {
		abort();
	}
out:
	idc_info_clear(&a);
	idc_info_clear(&b);
	ml_wr_free(&w);
	ml_wr_free(&s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct idc_info info;

	if (size < 1 || size > 2 * IDC_INFO_MAX) {
		return 0;
	}
	switch (data[0] % 3) {
	case 0:
		fuzz_config(data + 1, size - 1);
		break;
	case 1:
		fuzz_info(data + 1, size - 1);
		break;
	case 2:
		if (idc_data_open(sam_key, card_serial, data + 1, size - 1,
		    &info) == 0) {
			abort();	/* a forged blob opened */
		}
		idc_info_clear(&info);
		break;
	}
	return 0;
}
