/*
 * pcsc_link_check: drive the "pcsc:" chip link against real pcscd + vpcd +
 * mintline-chip, for tests/integration/test-pcsc.sh.
 *
 *	pcsc_link_check selftest SPEC
 *	pcsc_link_check wait SPEC SLOT present|absent TIMEOUT_MS
 *	pcsc_link_check info SPEC SLOT
 *	pcsc_link_check burst SPEC SLOT SO_PIN MAX
 *	pcsc_link_check swap SPEC SLOT TIMEOUT_MS
 *	pcsc_link_check reset READER-FILTER
 *
 * Exit status: 0 pass, 1 fail, 2 usage.  Output lines are key=value so
 * the shell test can pick them apart.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if MINTLINE_HAVE_PCSC
#include <winscard.h>
#endif

#include "chip.h"
#include "chip_proto.h"
#include "chiplink.h"
#include "ml_err.h"
#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wr.h"
#include "sw.h"

#define PLC_BIG_CMD	60000	/* extended command body for the size test */

static int plc_failures;

static void
plc_check(bool ok, const char *what, int r)
{
	if (ok) {
		printf("ok %s\n", what);
		return;
	}
	printf("FAIL %s (%s)\n", what, ml_errname(r));
	plc_failures++;
}

static int
plc_parse_size(const char *s, size_t *ret)
{
	unsigned long v;
	char *end;

	v = strtoul(s, &end, 10);
	if (end == s || *end != '\0') {
		return ML_ERR_ARG;
	}
	*ret = v;
	return 0;
}

/* SELECT the mintline applet of one kind.  *ret_sw gets the status word. */
static int
plc_select(struct chiplink *l, size_t slot, uint64_t gen, uint8_t kind,
    bool extended, uint16_t *ret_sw)
{
	static const uint8_t prefix[] = CHIP_AID_PREFIX;
	uint8_t cmd[16], data[258];
	struct ml_wr w = ML_WR_FIXED(cmd, sizeof(cmd));
	size_t n = 0;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_wr_u8(&w, CLA_ISO));
	ML_TRY(ml_wr_u8(&w, INS_SELECT));
	ML_TRY(ml_wr_u8(&w, 0x04));
	ML_TRY(ml_wr_u8(&w, 0x00));
	if (extended) {
		ML_TRY(ml_wr_u8(&w, 0x00));
		ML_TRY(ml_wr_u16be(&w, CHIP_AID_LEN));
	} else {
		ML_TRY(ml_wr_u8(&w, CHIP_AID_LEN));
	}
	ML_TRY(ml_wr_bytes(&w, prefix, sizeof(prefix)));
	ML_TRY(ml_wr_u8(&w, kind));
	ML_TRY(chiplink_apdu(l, slot, gen, cmd, w.len, data, sizeof(data), &n,
	    ret_sw));
	r = 0;
out:
	return r;
}

/* SELECT whichever kind the chip is; its kind in *ret_kind. */
static int
plc_select_any(struct chiplink *l, size_t slot, uint64_t gen,
    uint8_t *ret_kind)
{
	uint16_t sw = 0;
	uint8_t k;
	int r = ML_ERR_INTERNAL;

	for (k = CHIP_KIND_READER; k <= CHIP_KIND_IDCARD; k++) {
		ML_TRY(plc_select(l, slot, gen, k, false, &sw));
		if (sw == SW_OK) {
			*ret_kind = k;
			r = 0;
			goto out;
		}
	}
	r = ML_ERR_NOT_FOUND;
out:
	return r;
}

/* Print a TLV value as text, trailing blanks dropped. */
static void
plc_print_text(const char *key, const struct ml_rd *v)
{
	size_t n = ml_rd_left(v);
	const uint8_t *p = ml_rd_ptr(v);
	size_t i;

	while (n > 0 && p[n - 1] == ' ') {
		n--;
	}
	printf("%s=", key);
	for (i = 0; i < n; i++) {
		putchar(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?');
	}
	putchar('\n');
}

/* GET DATA 01 and print kind, serial, label. */
static int
plc_print_info(struct chiplink *l, size_t slot, uint64_t gen)
{
	static const uint8_t cmd[] = { CLA_ISO, INS_GET_DATA, GD_CHIP_INFO,
	    0x00, 0x00 };
	uint8_t data[258];
	struct ml_rd rd, v;
	size_t n = 0;
	uint16_t sw = 0;
	uint8_t kind = 0;
	int r = ML_ERR_INTERNAL;

	ML_TRY(chiplink_apdu(l, slot, gen, cmd, sizeof(cmd), data,
	    sizeof(data), &n, &sw));
	ML_ENSURE(sw == SW_OK, ML_ERR_FORMAT);
	rd = ML_RD_INIT(data, n);
	ML_TRY(ml_tlv_find(&rd, TAG_INFO_KIND, &v));
	ML_TRY(ml_rd_u8(&v, &kind));
	printf("kind=%s\n", chip_kind_name((enum chip_kind)kind));
	ML_TRY(ml_tlv_find(&rd, TAG_INFO_SERIAL, &v));
	plc_print_text("serial", &v);
	ML_TRY(ml_tlv_find(&rd, TAG_INFO_LABEL, &v));
	plc_print_text("label", &v);
	r = 0;
out:
	return r;
}

/*
 * What the chip link promises, against live readers: slots listed, a
 * present chip answers SELECT in short and extended form, a stale
 * generation is refused, sections nest, a large extended command passes,
 * bad slot indexes are refused.
 */
static int
cmd_selftest(char **argv)
{
	struct chiplink *l = NULL;
	struct chiplink_slot_info info;
	uint8_t *big = NULL, resp[258] = { 0 };
	size_t i, n = 0, nslots, present = 0, ret_slot = 0;
	uint16_t sw = 0;
	uint8_t kind = 0;
	int r;

	r = chiplink_open(argv[0], &l);
	plc_check(r == 0, "open", r);
	if (r != 0) {
		return 1;
	}
	nslots = chiplink_nslots(l);
	plc_check(nslots > 0, "nslots > 0", 0);
	for (i = 0; i < nslots; i++) {
		if ((r = chiplink_slot_info(l, i, &info)) != 0) {
			plc_check(false, "slot_info", r);
			continue;
		}
		printf("slot=%zu name=\"%s\" present=%d generation=%llu\n", i,
		    info.name, info.present,
		    (unsigned long long)info.generation);
		if (!info.present) {
			continue;
		}
		present++;
		plc_check(info.generation > 0, "present chip has generation",
		    0);
		r = plc_select_any(l, i, info.generation, &kind);
		plc_check(r == 0, "select (short)", r);
		r = plc_print_info(l, i, info.generation);
		plc_check(r == 0, "get data chip info", r);

		r = plc_select(l, i, info.generation, kind, true, &sw);
		plc_check(r == 0 && sw == SW_OK, "select (extended Lc)", r);

		r = plc_select(l, i, info.generation + 1, kind, false, &sw);
		plc_check(r == ML_ERR_REMOVED, "stale generation refused", r);

		chiplink_lock(l, i);
		chiplink_lock(l, i);
		r = plc_select(l, i, 0, kind, false, &sw);
		chiplink_unlock(l, i);
		r = r == 0 ? plc_select(l, i, 0, kind, false, &sw) : r;
		chiplink_unlock(l, i);
		plc_check(r == 0 && sw == SW_OK, "nested section", r);

		/* 80 FE: no such INS; the point is the 60 KB trip. */
		if ((big = calloc(1, 7 + PLC_BIG_CMD)) == NULL) {
			plc_check(false, "alloc", ML_ERR_NOMEM);
			break;
		}
		memcpy(big, (const uint8_t[]){ CLA_PROP, 0xFE, 0x00, 0x00,
		    0x00, PLC_BIG_CMD >> 8, PLC_BIG_CMD & 0xFF }, 7);
		r = chiplink_transmit(l, i, info.generation, big,
		    7 + PLC_BIG_CMD, resp, sizeof(resp), &n);
		plc_check(r == 0 && n >= 2, "60000-byte extended command", r);
		free(big);
		big = NULL;
	}
	plc_check(present > 0, "at least one chip present", 0);

	r = chiplink_slot_info(l, nslots, &info);
	plc_check(r == ML_ERR_ARG, "slot index out of range", r);
	r = chiplink_transmit(l, nslots, 0, resp, 4, resp, sizeof(resp), &n);
	plc_check(r == ML_ERR_ARG, "transmit out of range", r);

	/* Nothing moves now: a poll times out (or reports a real change). */
	r = chiplink_wait(l, 0, &ret_slot);
	plc_check(r == ML_ERR_TIMEOUT || r == 0, "wait poll", r);
	chiplink_close(l);
	return plc_failures == 0 ? 0 : 1;
}

/* Wait, with chiplink_wait(), until slot's presence is `want`. */
static int
plc_await(struct chiplink *l, size_t slot, bool want, long tmo_ms,
    struct chiplink_slot_info *ret)
{
	struct chiplink_slot_info info;
	struct timespec t0, t1;
	size_t ret_slot;
	long elapsed;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if ((r = chiplink_slot_info(l, slot, &info)) != 0) {
			return r;
		}
		if (info.present == want) {
			*ret = info;
			return 0;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		elapsed = (t1.tv_sec - t0.tv_sec) * 1000 +
		    (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (elapsed >= tmo_ms) {
			return ML_ERR_TIMEOUT;
		}
		r = chiplink_wait(l, (int)(tmo_ms - elapsed), &ret_slot);
		if (r != 0 && r != ML_ERR_TIMEOUT) {
			return r;
		}
	}
}

/* Wait (with chiplink_wait) until slot is present or absent. */
static int
cmd_wait(char **argv)
{
	struct chiplink *l = NULL;
	struct chiplink_slot_info info;
	size_t slot, tmo;
	int r;

	if (plc_parse_size(argv[1], &slot) != 0 ||
	    plc_parse_size(argv[3], &tmo) != 0 ||
	    (strcmp(argv[2], "present") != 0 &&
	    strcmp(argv[2], "absent") != 0)) {
		return 2;
	}
	if ((r = chiplink_open(argv[0], &l)) == 0) {
		r = plc_await(l, slot, strcmp(argv[2], "present") == 0,
		    (long)tmo, &info);
	}
	if (r == 0) {
		printf("slot=%zu present=%d generation=%llu\n", slot,
		    info.present, (unsigned long long)info.generation);
	} else {
		printf("FAIL wait %s (%s)\n", argv[2], ml_errname(r));
	}
	chiplink_close(l);
	return r == 0 ? 0 : 1;
}

static int
cmd_info(char **argv)
{
	struct chiplink *l = NULL;
	size_t slot;
	uint8_t kind = 0;
	int r;

	if (plc_parse_size(argv[1], &slot) != 0) {
		return 2;
	}
	if ((r = chiplink_open(argv[0], &l)) == 0 &&
	    (r = plc_select_any(l, slot, 0, &kind)) == 0) {
		r = plc_print_info(l, slot, 0);
	}
	if (r != 0) {
		printf("FAIL info (%s)\n", ml_errname(r));
	}
	chiplink_close(l);
	return r == 0 ? 0 : 1;
}

/*
 * INIT TOKEN over and over (a store commit each), label burst-NNNNNN,
 * until the chip goes away or MAX commits.  Prints acked=N: the last label
 * the chip confirmed.  After a power cut the chip must hold burst-N or
 * burst-(N+1) (the one in flight), nothing else.
 */
static int
cmd_burst(char **argv)
{
	struct chiplink *l = NULL;
	struct chiplink_slot_info info;
	const char *pin = argv[2];
	uint8_t cmd[5 + 2 * 33], data[258];
	char label[16];
	size_t slot, max, i, n, acked = 0;
	uint16_t sw = 0;
	uint8_t kind = 0;
	struct ml_wr w;
	int r = ML_ERR_INTERNAL;

	if (plc_parse_size(argv[1], &slot) != 0 ||
	    plc_parse_size(argv[3], &max) != 0 || strlen(pin) < PIN_MIN_LEN ||
	    strlen(pin) > 32) {
		return 2;
	}
	ML_TRY(chiplink_open(argv[0], &l));
	ML_TRY(chiplink_slot_info(l, slot, &info));
	ML_TRY(plc_select_any(l, slot, info.generation, &kind));
	for (i = 1; i <= max; i++) {
		snprintf(label, sizeof(label), "burst-%06zu", i);
		w = ML_WR_FIXED(cmd, sizeof(cmd));
		ML_TRY(ml_wr_u8(&w, CLA_PROP));
		ML_TRY(ml_wr_u8(&w, INS_INIT_TOKEN));
		ML_TRY(ml_wr_u16be(&w, 0x0000));
		ML_TRY(ml_wr_u8(&w, (uint8_t)(2 + strlen(pin) +
		    strlen(label))));
		ML_TRY(ml_wr_lv8(&w, pin, strlen(pin)));
		ML_TRY(ml_wr_lv8(&w, label, strlen(label)));
		ML_TRY(chiplink_apdu(l, slot, info.generation, cmd, w.len,
		    data, sizeof(data), &n, &sw));
		ML_ENSURE(sw == SW_OK, ML_ERR_REJECTED);
		acked = i;
	}
	r = 0;
out:
	printf("acked=%zu\n", acked);
	if (r != 0) {
		printf("stopped=%s sw=%04x\n", ml_errname(r), sw);
	}
	chiplink_close(l);
	/* Ending on a lost chip is the point; a refusal is not. */
	return acked > 0 && (r == 0 || r == ML_ERR_REMOVED ||
	    r == ML_ERR_IO) ? 0 : 1;
}

/*
 * One link held across a chip leaving and coming back (the test kills and
 * restarts mintline-chip meanwhile): the generation must move on, the old
 * one must be refused, the new one accepted.  Prints "armed" once the first
 * generation is in use.
 */
static int
cmd_swap(char **argv)
{
	struct chiplink *l = NULL;
	struct chiplink_slot_info before, gone, after;
	size_t slot, tmo;
	uint16_t sw = 0;
	uint8_t kind = 0;
	int r;

	if (plc_parse_size(argv[1], &slot) != 0 ||
	    plc_parse_size(argv[2], &tmo) != 0) {
		return 2;
	}
	if ((r = chiplink_open(argv[0], &l)) != 0) {
		plc_check(false, "open", r);
		return 1;
	}
	r = plc_await(l, slot, true, (long)tmo, &before);
	plc_check(r == 0, "chip present at start", r);
	if (r == 0) {
		r = plc_select_any(l, slot, before.generation, &kind);
		plc_check(r == 0, "select with the first generation", r);
	}
	if (r != 0) {
		chiplink_close(l);
		return 1;
	}
	printf("armed generation=%llu\n",
	    (unsigned long long)before.generation);
	r = plc_await(l, slot, false, (long)tmo, &gone);
	plc_check(r == 0, "chip seen leaving", r);
	r = plc_select(l, slot, before.generation, kind, false, &sw);
	plc_check(r == ML_ERR_REMOVED, "old generation refused while away",
	    r);
	r = plc_await(l, slot, true, (long)tmo, &after);
	plc_check(r == 0, "chip seen coming back", r);
	if (r == 0) {
		printf("generation %llu -> %llu\n",
		    (unsigned long long)before.generation,
		    (unsigned long long)after.generation);
		plc_check(after.generation > before.generation,
		    "generation bumped on arrival", 0);
		r = plc_select(l, slot, before.generation, kind, false, &sw);
		plc_check(r == ML_ERR_REMOVED, "old generation refused", r);
		r = plc_select(l, slot, after.generation, kind, false, &sw);
		plc_check(r == 0 && sw == SW_OK, "new generation accepted", r);
	}
	chiplink_close(l);
	return plc_failures == 0 ? 0 : 1;
}

/*
 * Another PC/SC client resets the card: connect to the first reader whose
 * name contains FILTER, shared, and disconnect with SCARD_RESET_CARD.
 * Every other client's next exchange then meets SCARD_W_RESET_CARD.
 */
static int
cmd_reset(char **argv)
{
#if MINTLINE_HAVE_PCSC
	SCARDCONTEXT ctx;
	SCARDHANDLE card;
	DWORD proto, len = 0;
	char *readers = NULL, *rd;
	LONG rv;
	int ok = 0;

	if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx) !=
	    SCARD_S_SUCCESS) {
		plc_check(false, "reset: SCardEstablishContext", ML_ERR_IO);
		return 1;
	}
	if (SCardListReaders(ctx, NULL, NULL, &len) == SCARD_S_SUCCESS &&
	    (readers = calloc(1, len + 1)) != NULL &&
	    SCardListReaders(ctx, NULL, readers, &len) == SCARD_S_SUCCESS) {
		for (rd = readers; *rd != '\0'; rd += strlen(rd) + 1) {
			if (strstr(rd, argv[0]) == NULL) {
				continue;
			}
			rv = SCardConnect(ctx, rd, SCARD_SHARE_SHARED,
			    SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &card,
			    &proto);
			ok = rv == SCARD_S_SUCCESS &&
			    SCardDisconnect(card, SCARD_RESET_CARD) ==
			    SCARD_S_SUCCESS;
			break;
		}
	}
	free(readers);
	SCardReleaseContext(ctx);
	plc_check(ok, "card reset by another client", ok ? 0 : ML_ERR_IO);
	return ok ? 0 : 1;
#else
	(void)argv;
	fprintf(stderr, "built without PC/SC\n");
	return 77;
#endif
}

static const struct plc_cmd {
	const char	*name;
	int		 nargs;
	int		(*run)(char **);
	const char	*usage;
} plc_cmds[] = {
	{ "selftest",	1, cmd_selftest, "SPEC" },
	{ "wait",	4, cmd_wait,	 "SPEC SLOT present|absent TIMEOUT_MS" },
	{ "info",	2, cmd_info,	 "SPEC SLOT" },
	{ "burst",	4, cmd_burst,	 "SPEC SLOT SO_PIN MAX" },
	{ "swap",	3, cmd_swap,	 "SPEC SLOT TIMEOUT_MS" },
	{ "reset",	1, cmd_reset,	 "READER-FILTER" },
};

int
main(int argc, char **argv)
{
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; argc >= 2 && i < ML_NELEM(plc_cmds); i++) {
		if (strcmp(argv[1], plc_cmds[i].name) == 0 &&
		    argc - 2 == plc_cmds[i].nargs) {
			return plc_cmds[i].run(argv + 2);
		}
	}
	for (i = 0; i < ML_NELEM(plc_cmds); i++) {
		fprintf(stderr, "usage: pcsc_link_check %s %s\n",
		    plc_cmds[i].name, plc_cmds[i].usage);
	}
	return 2;
}
