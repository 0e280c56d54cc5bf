/*
 * Unit tests for chip-applet/store.c, the tear-safe two-slot chip store,
 * and for tear safety one level up, through the card OS.
 *
 * The exhaustive tear test: for every k from 0 to the byte length of a
 * commit, cut the power after byte k, reopen, and find exactly the old
 * state or (only when all bytes made it) exactly the new one.  Then the
 * same once more after a torn commit and a full one, so that the slot that
 * gets torn the second time is the other one.  The chip-level test does
 * the same with a CREATE OBJECT sent as an APDU.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "ml_err.h"
#include "ml_log.h"
#include "ml_ossl.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "chip_int.h"
#include "chip_state.h"
#include "store.h"

#include "chiptest.h"

static char dir[256];
static char path[320];

static void
setup(void)
{
	ck_assert_r(ml_ossl_init(), 0);
	ml_log_set_level(ML_LOG_ERROR);	/* the cuts are expected */
	ct_mkdtemp(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/chip.img", dir);
}

static void
teardown(void)
{
	ct_rmtree(dir);
}

/* A payload of n bytes; the last byte is never 0 (see tear_loop). */
static uint8_t *
mkpayload(size_t n, uint8_t seed)
{
	uint8_t *p = malloc(n ? n : 1);
	size_t i;

	ck_assert_ptr_nonnull(p);
	for (i = 0; i < n; i++) {
		p[i] = (uint8_t)(seed + i * 37 + (i >> 8));
	}
	if (n > 0) {
		p[n - 1] = (uint8_t)(seed | 1);
	}
	return p;
}

/* Open, expect success and exactly (want, n). */
static void
expect_payload(const uint8_t *want, size_t n, const char *what)
{
	struct store *s = NULL;
	uint8_t *p = NULL;
	size_t len = 0;
	int r;

	r = store_open(path, &s, &p, &len);
	ck_assert_msg(r == 0, "%s: store_open: %s", what, ml_errname(r));
	ck_assert_msg(len == n, "%s: length %zu, want %zu", what, len, n);
	ck_assert_msg(n == 0 || memcmp(p, want, n) == 0, "%s: contents", what);
	ml_freezero(p, len);
	store_close(s);
}

static void
commit_full(const uint8_t *pl, size_t n)
{
	struct store *s;
	uint8_t *p;
	size_t len;

	ck_assert_r(store_open(path, &s, &p, &len), 0);
	ml_freezero(p, len);
	ck_assert_r(store_commit(s, pl, n), 0);
	store_close(s);
}

/*
 * The store holds old (o_len) as its newest copy.  For every k from 0 to
 * the byte length of committing new: reopen, cut after k, commit new;
 * the commit must fail for k < total and succeed at k == total; reopen
 * and find old (k < total) or new (k == total), nothing else.
 *
 * (For a commit to look complete by accident, the bytes after k in the
 * slot would have to equal the new copy; the caller makes the new
 * payload's last byte differ from what that slot holds there.)
 */
static void
tear_loop(const uint8_t *old, size_t o_len, const uint8_t *nw, size_t n_len)
{
	size_t total = STORE_HDR_LEN + n_len, k;
	struct store *s;
	uint32_t gen0 = 0;
	uint8_t *p;
	size_t len;
	char what[64];
	int r;

	for (k = 0; k <= total; k++) {
		snprintf(what, sizeof(what), "cut after %zu of %zu", k, total);
		ck_assert_r(store_open(path, &s, &p, &len), 0);
		ck_assert_msg(len == o_len && memcmp(p, old, o_len) == 0,
		    "%s: not the old copy before the commit", what);
		ml_freezero(p, len);
		if (k == 0) {
			gen0 = store_generation(s);
		}
		ck_assert_uint_eq(store_generation(s), gen0);
		store_test_cut_after(s, (long)k);
		r = store_commit(s, nw, n_len);
		if (k < total) {
			ck_assert_msg(r == ML_ERR_IO, "%s: commit gave %s", what,
			    ml_errname(r));
			/* After the cut, nothing more reaches the store. */
			store_test_cut_after(s, -1);
			ck_assert_r(store_commit(s, nw, n_len), ML_ERR_IO);
			ck_assert_uint_eq(store_generation(s), gen0);
		} else {
			ck_assert_msg(r == 0, "%s: full commit gave %s", what,
			    ml_errname(r));
			ck_assert_uint_eq(store_generation(s), gen0 + 1);
		}
		store_close(s);
		if (k < total) {
			expect_payload(old, o_len, what);
		} else {
			expect_payload(nw, n_len, what);
		}
	}
}

START_TEST(store_exhaustive_tear)
{
	uint8_t *p0 = mkpayload(100, 0x10), *a = mkpayload(200, 0x20);
	uint8_t *b = mkpayload(333, 0x30), *cc = mkpayload(150, 0x40);
	uint8_t *d = mkpayload(400, 0x50), *e = mkpayload(0, 0);
	struct store *s;
	uint8_t *p;
	size_t len;

	/* gen 1 = p0 in slot 0; gen 2 = a in slot 1. */
	ck_assert_r(store_create(path, p0, 100), 0);
	expect_payload(p0, 100, "created");
	commit_full(a, 200);
	expect_payload(a, 200, "a committed");

	/* Level 1: tear b (into slot 0, over p0) at every byte. */
	tear_loop(a, 200, b, 333);

	/*
	 * Level 2: back to "a newest, torn garbage in the other slot", then a
	 * full commit of c, then tear d (which now goes into the slot that
	 * held a) at every byte: c must survive every cut.
	 */
	ck_assert_r(store_create(path, p0, 100), ML_ERR_EXISTS);
	ct_rmtree(dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_r(store_create(path, p0, 100), 0);
	commit_full(a, 200);
	ck_assert_r(store_open(path, &s, &p, &len), 0);
	ml_freezero(p, len);
	store_test_cut_after(s, (STORE_HDR_LEN + 333) / 2);
	ck_assert_r(store_commit(s, b, 333), ML_ERR_IO);
	/* the failure names the image and the cause */
	ck_assert_ptr_nonnull(strstr(ml_errmsg(ML_ERR_IO), path));
	ck_assert_ptr_nonnull(strstr(ml_errmsg(ML_ERR_IO), "lost power"));
	store_close(s);
	expect_payload(a, 200, "after a torn b");
	commit_full(cc, 150);
	expect_payload(cc, 150, "c after the torn b");
	tear_loop(cc, 150, d, 400);

	/* And once more the other way round (d newest, in slot 1). */
	tear_loop(d, 400, a, 200);
	commit_full(e, 0);
	expect_payload(e, 0, "empty after all that");

	free(p0);
	free(a);
	free(b);
	free(cc);
	free(d);
	free(e);
}
END_TEST

/* Patch one byte of the image file in place. */
static void
poke(off_t off, uint8_t xor_with)
{
	uint8_t b;
	int fd;

	ck_assert_int_ge(fd = open(path, O_RDWR), 0);
	ck_assert_int_eq(pread(fd, &b, 1, off), 1);
	b ^= xor_with;
	ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

/* A changed byte anywhere in the newer copy: the older one is loaded. */
START_TEST(store_corrupt_newer_falls_back)
{
	uint8_t *p0 = mkpayload(100, 0x61), *a = mkpayload(120, 0x62);
	size_t total = STORE_HDR_LEN + 120, i;
	char what[48];

	ck_assert_r(store_create(path, p0, 100), 0);
	commit_full(a, 120);		/* slot 1, gen 2 */
	for (i = 0; i < total; i++) {
		snprintf(what, sizeof(what), "byte %zu of slot 1", i);
		poke((off_t)STORE_SLOT_SIZE + (off_t)i, (uint8_t)(1u << (i % 8)));
		expect_payload(p0, 100, what);
		poke((off_t)STORE_SLOT_SIZE + (off_t)i, (uint8_t)(1u << (i % 8)));
	}
	expect_payload(a, 120, "restored");
	/* Bytes past the copy's length are not part of it. */
	poke((off_t)STORE_SLOT_SIZE + (off_t)total + 5, 0xFF);
	expect_payload(a, 120, "slack byte");
	/* A changed byte in the older copy does not matter. */
	poke(7, 0x01);
	expect_payload(a, 120, "older copy damaged");
	/* Both damaged: nothing verifies. */
	poke((off_t)STORE_SLOT_SIZE + STORE_HDR_LEN, 0x80);
	{
		struct store *s = (struct store *)(uintptr_t)1;
		uint8_t *p = (uint8_t *)(uintptr_t)2;
		size_t len = 3;

		ck_assert_r(store_open(path, &s, &p, &len), ML_ERR_FORMAT);
		/* outputs untouched on failure */
		ck_assert_ptr_eq(s, (struct store *)(uintptr_t)1);
		ck_assert_ptr_eq(p, (uint8_t *)(uintptr_t)2);
		ck_assert_uint_eq(len, 3);
	}
	free(p0);
	free(a);
}
END_TEST

/* The newer copy wins whichever slot it is in, over many commits. */
START_TEST(store_generations)
{
	uint8_t buf[4] = { 0 }, *p;
	struct store *s;
	uint32_t gen = 1, i, j;
	size_t len;

	ck_assert_r(store_create(path, buf, sizeof(buf)), 0);
	for (i = 0; i < 30; i++) {
		ck_assert_r(store_open(path, &s, &p, &len), 0);
		ck_assert_uint_eq(store_generation(s), gen);
		ck_assert_uint_eq(len, sizeof(buf));
		ck_assert_mem_eq(p, buf, sizeof(buf));
		ml_freezero(p, len);
		/* 1, 2 or 3 commits per session: both slot parities */
		for (j = 0; j <= i % 3; j++) {
			buf[3]++;
			buf[0] = (uint8_t)j;
			ck_assert_r(store_commit(s, buf, sizeof(buf)), 0);
			ck_assert_uint_eq(store_generation(s), ++gen);
		}
		store_close(s);
	}
	/* An empty payload is a payload. */
	ck_assert_r(store_open(path, &s, &p, &len), 0);
	ml_freezero(p, len);
	ck_assert_r(store_commit(s, buf, 0), 0);
	store_close(s);
	expect_payload(buf, 0, "empty");
}
END_TEST

static void
write_file(const char *p, const uint8_t *b, size_t n)
{
	int fd;

	ck_assert_int_ge(fd = open(p, O_WRONLY | O_TRUNC), 0);
	ck_assert_int_eq(write(fd, b, n), (ssize_t)n);
	close(fd);
}

START_TEST(store_wrong_key)
{
	uint8_t pl[10] = "0123456789", key[STORE_KEY_LEN];
	char kp[400];
	struct store *s;
	uint8_t *p;
	size_t len;

	snprintf(kp, sizeof(kp), "%s.key", path);
	ck_assert_r(store_create(path, pl, sizeof(pl)), 0);
	expect_payload(pl, sizeof(pl), "right key");
	memset(key, 0x42, sizeof(key));
	write_file(kp, key, sizeof(key));
	ck_assert_r(store_open(path, &s, &p, &len), ML_ERR_FORMAT);
	write_file(kp, key, sizeof(key) - 1);		/* short key file */
	ck_assert_r(store_open(path, &s, &p, &len), ML_ERR_FORMAT);
	ck_assert_int_eq(unlink(kp), 0);
	ck_assert_r(store_open(path, &s, &p, &len), ML_ERR_IO);
}
END_TEST

START_TEST(store_bad_files)
{
	uint8_t pl[10] = "0123456789";
	struct store *s;
	uint8_t *p;
	size_t len;
	int fd;

	ck_assert_r(store_open(path, &s, &p, &len), ML_ERR_IO);	/* absent */
	ck_assert_r(store_create(path, pl, sizeof(pl)), 0);
	ck_assert_r(store_create(path, pl, sizeof(pl)), ML_ERR_EXISTS);
	/* A truncated image: no copy complete. */
	ck_assert_int_ge(fd = open(path, O_RDWR), 0);
	ck_assert_int_eq(ftruncate(fd, STORE_HDR_LEN + 5), 0);
	close(fd);
	ck_assert_r(store_open(path, &s, &p, &len), ML_ERR_FORMAT);
	ck_assert_int_ge(fd = open(path, O_RDWR), 0);
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	close(fd);
	ck_assert_r(store_open(path, &s, &p, &len), ML_ERR_FORMAT);
}
END_TEST

START_TEST(store_shared)
{
	uint8_t pl[3] = { 1, 2, 3 }, *p, *p2 = NULL, *p3 = NULL;
	struct store *s, *s2 = NULL;
	size_t len, len2 = 0, len3 = 0;
	int fd;

	/* Two hosts open one image (OP-3); neither holds it between
	 * commands. */
	ck_assert_r(store_create(path, pl, sizeof(pl)), 0);
	ck_assert_r(store_open(path, &s, &p, &len), 0);
	ml_freezero(p, len);
	ck_assert_r(store_open(path, &s2, &p2, &len2), 0);
	ml_freezero(p2, len2);
	/* While one holds the lock, nobody else gets it... */
	ck_assert_r(store_lock(s), 0);
	ck_assert_int_ge(fd = open(path, O_RDONLY), 0);
	ck_assert_int_ne(flock(fd, LOCK_EX | LOCK_NB), 0);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	ck_assert_r(store_sync(s, &p3, &len3), 1);	/* nothing new */
	ck_assert_r(store_commit(s, pl, 2), 0);
	store_unlock(s);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	ck_assert_int_eq(flock(fd, LOCK_UN), 0);
	/* ... and the other host sees the commit at its next command. */
	ck_assert_r(store_lock(s2), 0);
	ck_assert_r(store_sync(s2, &p3, &len3), 0);
	ck_assert_uint_eq(len3, 2);
	ck_assert_mem_eq(p3, pl, 2);
	ml_freezero(p3, len3);
	ck_assert_uint_eq(store_generation(s2), store_generation(s));
	ck_assert_r(store_commit(s2, pl, 1), 0);
	store_unlock(s2);
	ck_assert_r(store_lock(s), 0);
	ck_assert_r(store_sync(s, &p3, &len3), 0);
	ck_assert_uint_eq(len3, 1);
	ml_freezero(p3, len3);
	store_unlock(s);
	/* A host that dies holding the lock releases it (close). */
	ck_assert_r(store_lock(s2), 0);
	store_close(s2);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	close(fd);
	store_close(s);
	expect_payload(pl, 1, "after both hosts wrote");
	store_close(NULL);
}
END_TEST

START_TEST(store_oversize)
{
	uint8_t *big = mkpayload(STORE_MAX_PAYLOAD + 1, 0x77);
	struct store *s;
	uint8_t *p;
	size_t len;

	ck_assert_r(store_create(path, big, STORE_MAX_PAYLOAD + 1),
	    ML_ERR_TOO_LARGE);
	ck_assert_r(store_create(path, big, STORE_MAX_PAYLOAD), 0);
	expect_payload(big, STORE_MAX_PAYLOAD, "max at create");
	ck_assert_r(store_open(path, &s, &p, &len), 0);
	ml_freezero(p, len);
	ck_assert_r(store_commit(s, big, STORE_MAX_PAYLOAD + 1), ML_ERR_TOO_LARGE);
	ck_assert_r(store_commit(s, big, (size_t)-1), ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(store_generation(s), 1);
	big[0] ^= 1;
	ck_assert_r(store_commit(s, big, STORE_MAX_PAYLOAD), 0);
	store_close(s);
	expect_payload(big, STORE_MAX_PAYLOAD, "max at commit");
	free(big);
}
END_TEST

/* ---- tear safety through the card OS ------------------------------ */

#define SO_PIN		"87654321"
#define USER_PIN	"1234"

static size_t
list_objects(struct chip *c, uint8_t *out, size_t cap)
{
	size_t n = 0;

	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_LIST_OBJECTS, 0, 0, NULL, 0, 65536,
	    out, cap, &n), SW_OK);
	ck_assert_uint_eq(n % OBJ_LIST_ENTRY_LEN, 0);
	return n / OBJ_LIST_ENTRY_LEN;
}

/* The object is there with exactly these attributes, or not at all. */
static bool
object_state(struct chip *c, const uint8_t *attrs, size_t n)
{
	uint8_t list[64 * OBJ_LIST_ENTRY_LEN], obj[512];
	struct ml_rd rd, v;
	size_t cnt, olen;
	uint16_t id;

	cnt = list_objects(c, list, sizeof(list));
	ck_assert_uint_le(cnt, 1);
	if (cnt == 0) {
		return false;
	}
	id = (uint16_t)(list[0] << 8 | list[1]);
	ck_assert_uint_eq(list[2], OBJ_CLASS_DATA);
	ck_assert_uint_eq((list[4] << 8) | list[5], n);
	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_READ_OBJECT, id >> 8, id & 0xff,
	    NULL, 0, 65536, obj, sizeof(obj), &olen), SW_OK);
	rd = ML_RD_INIT(obj, olen);
	ck_assert_r(ml_tlv_find(&rd, TAG_OBJ_ATTRS, &v), 0);
	ck_assert_uint_eq(v.len, n);
	ck_assert_mem_eq(v.p, attrs, n);
	return true;
}

START_TEST(chip_tear_create_object)
{
	uint8_t cmd[2 + 64], attrs[60];
	struct chip *c;
	size_t k, i, total = 0, payload_len = 0;
	uint16_t sw;
	bool found;
	char what[64];

	for (i = 0; i < sizeof(attrs); i++) {
		attrs[i] = (uint8_t)(0xA0 + i);
	}
	cmd[0] = OBJ_CLASS_DATA;
	cmd[1] = 0;
	memcpy(cmd + 2, attrs, sizeof(attrs));

	ck_assert_r(chip_manufacture(path, CHIP_KIND_READER, "TEAR0001"), 0);
	ck_assert_r(chip_open(path, &c), 0);
	ct_personalise(c, SO_PIN, USER_PIN);
	chip_close(c);

	for (k = 0; ; k++) {
		snprintf(what, sizeof(what), "cut after %zu", k);
		ck_assert_r(chip_open(path, &c), 0);
		ck_assert_sw(ct_select(c), SW_OK);
		ck_assert_msg(!object_state(c, attrs, sizeof(attrs)), "%s", what);
		ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);
		chip_test_cut_after(c, (long)k);
		sw = ct_cmd(c, CLA_PROP, INS_CREATE_OBJECT, 0, 0, cmd,
		    2 + sizeof(attrs), 0, NULL, 0, NULL);
		if (sw == SW_OK) {
			payload_len = c->last_len;
			total = STORE_HDR_LEN + payload_len;
		} else {
			ck_assert_msg(sw == SW_MEMORY_FAILURE, "%s: SW %04X", what,
			    sw);
			/* RAM went back to what the store holds. */
			ck_assert_msg(!object_state(c, attrs, sizeof(attrs)),
			    "%s: RAM kept the object", what);
		}
		chip_close(c);

		ck_assert_r(chip_open(path, &c), 0);
		ck_assert_sw(ct_select(c), SW_OK);
		found = object_state(c, attrs, sizeof(attrs));
		ck_assert_msg(found == (sw == SW_OK), "%s: object %s", what,
		    found ? "present after a failed commit" : "lost");
		/* The chip still works: log in (two commits) after the tear. */
		ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);
		chip_close(c);
		if (sw == SW_OK) {
			break;
		}
		ck_assert_msg(k < 100000, "the commit never completed");
	}
	/* It completed exactly when its last byte was written. */
	ck_assert_uint_eq(k, total);
	ck_assert_uint_gt(payload_len, sizeof(attrs));

	/* And goes on working: a second object, delete the first. */
	ck_assert_r(chip_open(path, &c), 0);
	ck_assert_sw(ct_select(c), SW_OK);
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_CREATE_OBJECT, 0, 0, cmd, 10), SW_OK);
	ck_assert_uint_eq(list_objects(c, (uint8_t[64]){ 0 }, 64), 2);
	chip_close(c);
}
END_TEST

/* The attributes of object id, read back through the chip. */
static size_t
read_attrs(struct chip *c, uint16_t id, uint8_t *out, size_t cap)
{
	static uint8_t obj[8192];
	struct ml_rd rd, v;
	size_t olen;

	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_READ_OBJECT, id >> 8, id & 0xff,
	    NULL, 0, 65536, obj, sizeof(obj), &olen), SW_OK);
	rd = ML_RD_INIT(obj, olen);
	ck_assert_r(ml_tlv_find(&rd, TAG_OBJ_ATTRS, &v), 0);
	ck_assert_uint_le(v.len, cap);
	memcpy(out, v.p, v.len);
	return v.len;
}

/*
 * UPDATE OBJECT torn at every byte: the object keeps exactly its old
 * attributes or has exactly the new ones (a longer blob than before, so a
 * mix would show), never anything in between.
 */
START_TEST(chip_tear_update_object)
{
	uint8_t oldv[40], newv[300], got[512], cmd[2 + sizeof(oldv)], idb[2];
	struct chip *c;
	size_t k, n, i;
	uint16_t id, sw;
	char what[64];

	for (i = 0; i < sizeof(oldv); i++) {
		oldv[i] = (uint8_t)(0x10 + i);
	}
	for (i = 0; i < sizeof(newv); i++) {
		newv[i] = (uint8_t)(0x80 ^ i);
	}
	cmd[0] = OBJ_CLASS_DATA;
	cmd[1] = OBJ_F_PRIVATE;
	memcpy(cmd + 2, oldv, sizeof(oldv));
	ck_assert_r(chip_manufacture(path, CHIP_KIND_READER, "TEAR0003"), 0);
	ck_assert_r(chip_open(path, &c), 0);
	ct_personalise(c, SO_PIN, USER_PIN);
	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_CREATE_OBJECT, 0, 0, cmd, sizeof(cmd),
	    0, idb, sizeof(idb), &n), SW_OK);
	id = (uint16_t)(idb[0] << 8 | idb[1]);
	chip_close(c);

	for (k = 0; ; k++) {
		snprintf(what, sizeof(what), "cut after %zu", k);
		ck_assert_r(chip_open(path, &c), 0);
		ck_assert_sw(ct_select(c), SW_OK);
		ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);
		chip_test_cut_after(c, (long)k);
		sw = ct_cmd0(c, CLA_PROP, INS_UPDATE_OBJECT, id >> 8, id & 0xff,
		    newv, sizeof(newv));
		ck_assert_msg(sw == SW_OK || sw == SW_MEMORY_FAILURE, "%s: %04X",
		    what, sw);
		/* RAM agrees with flash right away ... */
		n = read_attrs(c, id, got, sizeof(got));
		ck_assert_msg(sw == SW_OK ? (n == sizeof(newv) &&
		    memcmp(got, newv, n) == 0) : (n == sizeof(oldv) &&
		    memcmp(got, oldv, n) == 0), "%s: RAM", what);
		chip_close(c);
		/* ... and after power comes back. */
		ck_assert_r(chip_open(path, &c), 0);
		ck_assert_sw(ct_select(c), SW_OK);
		ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);
		n = read_attrs(c, id, got, sizeof(got));
		if (sw == SW_OK) {
			ck_assert_msg(n == sizeof(newv) && memcmp(got, newv, n) == 0,
			    "%s: new attributes lost", what);
		} else {
			ck_assert_msg(n == sizeof(oldv) && memcmp(got, oldv, n) == 0,
			    "%s: neither old nor new (%zu bytes)", what, n);
		}
		chip_close(c);
		if (sw == SW_OK) {
			break;
		}
		ck_assert_msg(k < 100000, "the commit never completed");
	}
	ck_assert_uint_gt(k, STORE_HDR_LEN + sizeof(newv));
}
END_TEST

/*
 * A tear in the middle of a PIN check must not give a try back: the
 * counter is committed before the comparison.  Cut at every byte of the
 * decrement's commit and check that tries never go up.
 */
START_TEST(chip_tear_pin_counter)
{
	uint8_t info[256];
	struct ml_rd rd, v;
	struct chip *c;
	size_t n, k;
	uint8_t tries, last = PIN_MAX_TRIES;
	uint16_t sw;

	ck_assert_r(chip_manufacture(path, CHIP_KIND_READER, "TEAR0002"), 0);
	ck_assert_r(chip_open(path, &c), 0);
	ct_personalise(c, SO_PIN, USER_PIN);
	chip_close(c);
	for (k = 0; k < 700; k += 3) {
		ck_assert_r(chip_open(path, &c), 0);
		ck_assert_sw(ct_select(c), SW_OK);
		chip_test_cut_after(c, (long)k);
		sw = ct_verify(c, PIN_USER, "9999");
		ck_assert(sw == SW_MEMORY_FAILURE || sw == SW_WARN_PIN_TRIES(last - 1) ||
		    sw == SW_AUTH_BLOCKED);
		chip_close(c);
		ck_assert_r(chip_open(path, &c), 0);
		ck_assert_sw(ct_select(c), SW_OK);
		ck_assert_sw(ct_cmd(c, CLA_ISO, INS_GET_DATA, GD_CHIP_INFO, 0, NULL,
		    0, 256, info, sizeof(info), &n), SW_OK);
		rd = ML_RD_INIT(info, n);
		ck_assert_r(ml_tlv_find(&rd, TAG_INFO_USER_TRIES, &v), 0);
		ck_assert_r(ml_rd_u8(&v, &tries), 0);
		/*
		 * Answered 63Cx: the try is gone.  Cut (6581): old or new state,
		 * so the try may be gone too -- the new copy can be complete on
		 * flash although the write was cut, when the slot already held
		 * the same payload from an earlier decrement -- but never more.
		 */
		if (sw == SW_MEMORY_FAILURE) {
			ck_assert_msg(tries == last || tries == last - 1,
			    "cut %zu: tries %u -> %u", k, last, tries);
		} else {
			ck_assert_msg(tries == last - 1,
			    "cut %zu: SW %04X, tries %u -> %u", k, sw, last, tries);
		}
		last = tries;
		if (tries == 1) {
			/* Keep going: reset the counter with the right PIN. */
			ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);
			last = PIN_MAX_TRIES;
		}
		chip_close(c);
	}
}
END_TEST

static Suite *
store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc;

	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, store_exhaustive_tear);
	tcase_add_test(tc, store_corrupt_newer_falls_back);
	tcase_add_test(tc, store_generations);
	tcase_add_test(tc, store_wrong_key);
	tcase_add_test(tc, store_bad_files);
	tcase_add_test(tc, store_shared);
	tcase_add_test(tc, store_oversize);
	suite_add_tcase(s, tc);

	tc = tcase_create("chip");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, chip_tear_create_object);
	tcase_add_test(tc, chip_tear_update_object);
	tcase_add_test(tc, chip_tear_pin_counter);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
