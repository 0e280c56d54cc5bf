/*
 * libFuzzer harness: the host side's parsers of chip responses, i.e. what
 * a counterfeit chip or a forged reader answers.  The chip link is
 * stubbed (chiplink_*() below; chiplink.c and its transports are not
 * compiled in) and answers each APDU with the next response of the input:
 *   - chiplink/chipcmd.c: chipcmd_send() (61xx chaining into the caller's
 *     buffer), chipcmd_begin() (SELECT), chipcmd_info() (the GET DATA chip
 *     information TLV walk);
 *   - pkcs11/chipconn.c: p11m_chip_apdu()/p11m_chip_cmd() (the module's
 *     own chaining), and through them pkcs11/slot.c p11m_slot_read_info()
 *     (chip information) and pkcs11/object.c p11m_objset_load() (LIST
 *     OBJECTS, READ OBJECT of each, the chip attribute blobs).
 *
 * Input: byte 0: bits 0-1 select the path, bit 7 makes the stub answer
 * the last response again forever once the input is used up (a chip that
 * never stops saying "61xx"); then responses, each u16be length | bytes
 * (data || SW1 SW2), cut at the end of the input.
 *
 * Invariants beyond "no crash, no sanitizer report": a host call never
 * sends more than MAX_APDUS commands for one input (GET RESPONSE chaining
 * terminates even against a chip that always answers 61xx); a successful
 * chipcmd_info() gives NUL-terminated serial and label.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chip_proto.h"
#include "chipcmd.h"
#include "chiplink.h"
#include "ml_log.h"
#include "p11m.h"

#define MAX_APDUS	100000

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------ chip link stub */

struct chiplink {
	const uint8_t	*p;
	size_t		 n, off;
	const uint8_t	*last;
	size_t		 last_len;
	bool		 sticky;
	unsigned long	 napdus;
};

static struct chiplink fake;
static CK_FUNCTION_LIST_PTR p11;

int
chiplink_open(const char *spec, struct chiplink **ret_link)
{
	(void)spec;
	(void)ret_link;
	return ML_ERR_UNSUPPORTED;
}

void
chiplink_close(struct chiplink *l)
{
	(void)l;
}

size_t
chiplink_nslots(const struct chiplink *l)
{
	(void)l;
	return 1;
}

int
chiplink_slot_info(struct chiplink *l, size_t slot,
    struct chiplink_slot_info *ret)
{
	(void)l;
	if (slot != 0) {
		return ML_ERR_ARG;
	}
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->name, sizeof(ret->name), "fuzz");
	ret->present = true;
	ret->generation = 1;
	return 0;
}

int
chiplink_transmit(struct chiplink *l, size_t slot, uint64_t generation,
    const uint8_t *cmd, size_t cmd_len, uint8_t *resp, size_t resp_cap,
    size_t *ret_resp_len)
{
	const uint8_t *p;
	size_t len;

	(void)slot;
	(void)generation;
	if (cmd == NULL || cmd_len < 4) {
		abort();	/* the host must send a well-formed APDU */
	}
	if (++l->napdus > MAX_APDUS) {
		abort();	/* unbounded command loop against one chip */
	}
	if (l->off + 2 <= l->n) {
		len = ((size_t)l->p[l->off] << 8) | l->p[l->off + 1];
		l->off += 2;
		if (len > l->n - l->off) {
			len = l->n - l->off;
		}
		p = l->p + l->off;
		l->off += len;
		l->last = p;
		l->last_len = len;
	} else if (l->sticky && l->last != NULL) {
		p = l->last;
		len = l->last_len;
	} else {
		return ML_ERR_REMOVED;
	}
	if (len > resp_cap) {
		return ML_ERR_TOO_LARGE;
	}
	memcpy(resp, p, len);
	*ret_resp_len = len;
	return 0;
}

void
chiplink_lock(struct chiplink *l, size_t slot)
{
	(void)l;
	(void)slot;
}

void
chiplink_unlock(struct chiplink *l, size_t slot)
{
	(void)l;
	(void)slot;
}

int
chiplink_wait(struct chiplink *l, int timeout_ms, size_t *ret_slot)
{
	(void)l;
	(void)timeout_ms;
	(void)ret_slot;
	return ML_ERR_TIMEOUT;
}

/* -------------------------------------------------------------- harness */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	ml_log_set_level(ML_LOG_ERROR);
	/* the module's global state (object handles): C_Initialize; its
	 * transports fail to open (chiplink_open() above), which is fine */
	if (C_GetFunctionList(&p11) != CKR_OK ||
	    p11->C_Initialize(NULL) != CKR_OK || p11m_mod() == NULL) {
		abort();
	}
	return 0;
}

static void
fuzz_chipcmd(bool begin)
{
	struct chipcmd cc = { .link = &fake, .slot = 0, .generation = 1 };
	struct chip_info ci;

	if (begin && chipcmd_begin(&cc, &fake, 0) != 0) {
		return;
	}
	if (chipcmd_info(&cc, &ci) == 0 &&
	    (memchr(ci.serial, '\0', sizeof(ci.serial)) == NULL ||
	    memchr(ci.label, '\0', sizeof(ci.label)) == NULL)) {
		abort();
	}
}

static void
fuzz_p11m(bool objects)
{
	static struct p11m_transport tr;
	static struct p11m_slot sl;

	memset(&sl, 0, sizeof(sl));
	tr.link = &fake;
	tr.slots = &sl;
	tr.nslots = 1;
	sl.tr = &tr;
	sl.pos = 0;
	sl.gen = 1;
	sl.login = (CK_USER_TYPE)-1;
	if (p11m_slot_read_info(&sl) != CKR_OK) {
		return;
	}
	if (memchr(sl.serial, '\0', sizeof(sl.serial)) == NULL ||
	    memchr(sl.label, '\0', sizeof(sl.label)) == NULL) {
		abort();
	}
	if (objects) {
		sl.gen = 1;
		(void)p11m_objset_load(&sl);
		p11m_objset_clear(&sl.objs);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1) {
		return 0;
	}
	fake = (struct chiplink){ .p = data + 1, .n = size - 1,
	    .sticky = (data[0] & 0x80) != 0 };
	switch (data[0] & 3) {
	case 0:
		fuzz_chipcmd(false);
		break;
	case 1:
		fuzz_chipcmd(true);
		break;
	case 2:
		fuzz_p11m(false);
		break;
	case 3:
		fuzz_p11m(true);
		break;
	}
	return 0;
}
