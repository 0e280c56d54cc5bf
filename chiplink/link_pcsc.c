/*
 * The "pcsc:" / "pcsc:FILTER" chip link: every PC/SC reader whose name
 * contains FILTER, through libpcsclite.  A real reader with a real chip, or
 * vpcd with mintline-chip behind it, look the same from here.
 *
 * Contexts.  libpcsclite holds a per-context mutex for the whole of a call,
 * SCardGetStatusChange's wait included, so one context cannot serve a
 * blocking wait, a presence poll and APDUs at once.  We use:
 *	status_ctx	presence polls (slot_info, connect), under state_mu
 *	wait_ctx	chiplink_wait only, under wait_mu
 *	slot ctx	one per slot for its card handle, under the slot lock,
 *			so different slots exchange APDUs in parallel
 * Lock order: slot lock, then state_mu; wait_mu, then state_mu.
 *
 * Presence and generation.  pcsc-lite puts the reader's card event counter
 * in the upper 16 bits of dwEventState; it moves on every insertion and
 * removal.  A slot's generation bumps when a chip is seen present and it
 * was not present before, or the counter moved since we last looked (a swap
 * between two looks).  A reset of the card by another PC/SC client
 * (SCARD_W_RESET_CARD) does not: the handle is reconnected and the
 * exchange answers ML_ERR_RESET, after which chipcmd_send() selects the
 * applet, restores the login and repeats the command (OP-3).
 *
 * Sections.  chiplink_lock() takes the slot's recursive mutex and, at the
 * outermost level, a PC/SC transaction (SCardBeginTransaction), so another
 * process sharing the reader cannot slip an APDU between VERIFY and SIGN.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chiplink.h"
#include "link_impl.h"
#include "ml_err.h"
#include "ml_log.h"

#if MINTLINE_HAVE_PCSC

#include <winscard.h>
#include <wintypes.h>

struct pcsc_ctx {
	SCARDCONTEXT	 h;
	bool		 valid;
};

struct pcsc_slot {
	pthread_mutex_t	 lock;		/* recursive; the APDU section */
	char		 reader[MAX_READERNAME];

	/* Under lock. */
	struct pcsc_ctx	 ctx;
	SCARDHANDLE	 card;
	bool		 connected;
	DWORD		 proto;
	uint64_t	 conn_gen;	/* the generation the handle talks to */
	unsigned	 depth;		/* chiplink_lock() nesting */
	bool		 in_txn;	/* SCardBeginTransaction held */
	uint64_t	 lost_gen;	/* 0, or the chip (generation) whose
					 * handle was dropped mid-use: its
					 * applet RAM is unknown */

	/* Under the link's state_mu. */
	bool		 present;
	uint16_t	 evcount;	/* pcsc-lite event counter, last seen */
	uint64_t	 generation;

	/* Under the link's wait_mu. */
	DWORD		 wait_known;	/* event state the waiter has reported */
};

struct pcsc_link {
	pthread_mutex_t	 state_mu;
	struct pcsc_ctx	 status_ctx;
	pthread_mutex_t	 wait_mu;
	struct pcsc_ctx	 wait_ctx;
	size_t		 nslots;
	struct pcsc_slot slots[];
};

/* Absent, mute, or the reader itself gone: no chip to talk to. */
#define PCSC_NOT_USABLE	(SCARD_STATE_MUTE | SCARD_STATE_UNAVAILABLE | \
			 SCARD_STATE_UNKNOWN | SCARD_STATE_IGNORE)

/*
 * PC/SC result to ML_ERR_*: one table for this transport.
 *
 *	SCARD_W_REMOVED_CARD, SCARD_E_NO_SMARTCARD,
 *	SCARD_W_RESET_CARD, SCARD_W_UNPOWERED_CARD,
 *	SCARD_W_UNRESPONSIVE_CARD, SCARD_E_READER_UNAVAILABLE	REMOVED
 *	SCARD_E_TIMEOUT						TIMEOUT
 *	SCARD_E_INSUFFICIENT_BUFFER				TOO_LARGE
 *	SCARD_E_NO_MEMORY					NOMEM
 *	SCARD_E_INVALID_PARAMETER, SCARD_E_INVALID_VALUE	ARG
 *	SCARD_E_UNKNOWN_READER, SCARD_E_NO_READERS_AVAILABLE	NOT_FOUND
 *	SCARD_E_SHARING_VIOLATION				STATE
 *	anything else (no service, comm error, ...)		IO
 */
static int
pcsc_err(LONG rv)
{
	switch (rv) {
	case SCARD_S_SUCCESS:
		return 0;
	case SCARD_W_REMOVED_CARD:
	case SCARD_E_NO_SMARTCARD:
	case SCARD_W_RESET_CARD:
	case SCARD_W_UNPOWERED_CARD:
	case SCARD_W_UNRESPONSIVE_CARD:
	case SCARD_E_READER_UNAVAILABLE:
		return ML_ERR_REMOVED;
	case SCARD_E_TIMEOUT:
		return ML_ERR_TIMEOUT;
	case SCARD_E_INSUFFICIENT_BUFFER:
		return ML_ERR_TOO_LARGE;
	case SCARD_E_NO_MEMORY:
		return ML_ERR_NOMEM;
	case SCARD_E_INVALID_PARAMETER:
	case SCARD_E_INVALID_VALUE:
		return ML_ERR_ARG;
	case SCARD_E_UNKNOWN_READER:
	case SCARD_E_NO_READERS_AVAILABLE:
		return ML_ERR_NOT_FOUND;
	case SCARD_E_SHARING_VIOLATION:
		return ML_ERR_STATE;
	default:
		return ML_ERR_IO;
	}
}

/*
 * pcsc_err() with an error context naming the reader (or pcscd, for calls
 * about no reader in particular), the PC/SC call and its error text:
 * "reader Virtual PCD 00 00: SCardTransmit: Card was removed."
 */
static int
pcsc_fail(LONG rv, const char *call, const char *reader)
{
	int r = pcsc_err(rv);

	if (reader != NULL) {
		return ml_errf(r, "reader %s: %s: %s (0x%08lX)", reader, call,
		    pcsc_stringify_error(rv), (unsigned long)rv);
	}
	return ml_errf(r, "pcscd: %s: %s (0x%08lX)", call,
	    pcsc_stringify_error(rv), (unsigned long)rv);
}

/* The context is no good any more (pcscd restarted or went away). */
static bool
pcsc_dead(LONG rv)
{
	return rv == SCARD_E_NO_SERVICE || rv == SCARD_E_SERVICE_STOPPED ||
	    rv == SCARD_E_INVALID_HANDLE;
}

static int
pcsc_ctx_ensure(struct pcsc_ctx *c)
{
	LONG rv;

	if (c->valid) {
		return 0;
	}
	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &c->h);
	if (rv != SCARD_S_SUCCESS) {
		return pcsc_fail(rv, "SCardEstablishContext", NULL);
	}
	c->valid = true;
	return 0;
}

static void
pcsc_ctx_drop(struct pcsc_ctx *c)
{
	if (c->valid) {
		(void)SCardReleaseContext(c->h);
		c->valid = false;
	}
}

/* Record an observed event state; state_mu held. */
static void
pcsc_note_state(struct pcsc_slot *s, DWORD ev)
{
	bool present = (ev & SCARD_STATE_PRESENT) != 0 &&
	    (ev & PCSC_NOT_USABLE) == 0;
	uint16_t count = (uint16_t)(ev >> 16);

	if (present && (!s->present || count != s->evcount)) {
		s->generation++;
	}
	s->present = present;
	s->evcount = count;
}

/*
 * Poll the reader states of n slots from `first` on the status context and
 * record them; state_mu held.  The event states go to ev[] if not NULL.
 */
static int
pcsc_poll_locked(struct pcsc_link *l, size_t first, size_t n, DWORD *ev)
{
	SCARD_READERSTATE *rs = NULL;
	LONG rv = SCARD_F_INTERNAL_ERROR;
	size_t i;
	int attempt, r = ML_ERR_INTERNAL;

	ML_ENSURE((rs = calloc(n, sizeof(*rs))) != NULL, ML_ERR_NOMEM);
	for (attempt = 0; attempt < 2; attempt++) {
		ML_TRY(pcsc_ctx_ensure(&l->status_ctx));
		for (i = 0; i < n; i++) {
			rs[i].szReader = l->slots[first + i].reader;
			rs[i].dwCurrentState = SCARD_STATE_UNAWARE;
		}
		rv = SCardGetStatusChange(l->status_ctx.h, 0, rs, (DWORD)n);
		if (!pcsc_dead(rv)) {
			break;
		}
		pcsc_ctx_drop(&l->status_ctx);
	}
	if (rv != SCARD_S_SUCCESS) {
		r = pcsc_fail(rv, "SCardGetStatusChange", n == 1 ?
		    l->slots[first].reader : NULL);
		goto out;
	}
	for (i = 0; i < n; i++) {
		pcsc_note_state(&l->slots[first + i], rs[i].dwEventState);
		if (ev != NULL) {
			ev[i] = rs[i].dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
		}
	}
	r = 0;
out:
	free(rs);
	return r;
}

/* Refresh one slot's presence; its generation afterwards in *ret_gen. */
static int
pcsc_refresh(struct pcsc_link *l, struct pcsc_slot *s, uint64_t *ret_gen)
{
	int r;

	pthread_mutex_lock(&l->state_mu);
	r = pcsc_poll_locked(l, (size_t)(s - l->slots), 1, NULL);
	if (r == 0 && ret_gen != NULL) {
		*ret_gen = s->generation;
	}
	pthread_mutex_unlock(&l->state_mu);
	return r;
}

static uint64_t
pcsc_cached_gen(struct pcsc_link *l, struct pcsc_slot *s)
{
	uint64_t g;

	pthread_mutex_lock(&l->state_mu);
	g = s->generation;
	pthread_mutex_unlock(&l->state_mu);
	return g;
}

static bool
pcsc_is_present(struct pcsc_link *l, struct pcsc_slot *s)
{
	bool p;

	pthread_mutex_lock(&l->state_mu);
	p = s->present;
	pthread_mutex_unlock(&l->state_mu);
	return p;
}

static void
pcsc_bump_gen(struct pcsc_link *l, struct pcsc_slot *s)
{
	pthread_mutex_lock(&l->state_mu);
	s->generation++;
	pthread_mutex_unlock(&l->state_mu);
}

/* Let go of the card handle (slot lock held). */
static void
pcsc_slot_drop(struct pcsc_slot *s)
{
	if (!s->connected) {
		return;
	}
	if (s->in_txn) {
		(void)SCardEndTransaction(s->card, SCARD_LEAVE_CARD);
		s->in_txn = false;
	}
	(void)SCardDisconnect(s->card, SCARD_LEAVE_CARD);
	s->connected = false;
}

/*
 * Another client reset the card (SCARD_W_RESET_CARD): take the handle
 * back without resetting it again (slot lock held).  The chip is the same;
 * its RAM (selection, login) is not.  0, or an error: then the caller
 * treats the chip as gone.
 */
static int
pcsc_slot_reset(struct pcsc_slot *s)
{
	DWORD proto = 0;
	LONG rv;

	s->in_txn = false;
	rv = SCardReconnect(s->card, SCARD_SHARE_SHARED,
	    SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_LEAVE_CARD, &proto);
	if (rv != SCARD_S_SUCCESS) {
		return pcsc_fail(rv, "SCardReconnect", s->reader);
	}
	s->proto = proto;
	if (s->depth > 0 && SCardBeginTransaction(s->card) ==
	    SCARD_S_SUCCESS) {
		s->in_txn = true;
	}
	return 0;
}

/* Inside a chiplink_lock() section: hold a PC/SC transaction too. */
static void
pcsc_slot_begin(struct pcsc_slot *s)
{
	LONG rv;

	if (s->depth == 0 || s->in_txn || !s->connected) {
		return;
	}
	rv = SCardBeginTransaction(s->card);
	if (rv == SCARD_S_SUCCESS) {
		s->in_txn = true;
	} else {
		/* The next transmit meets the same condition and reports it. */
		ml_debug("pcsc: SCardBeginTransaction: %s",
		    pcsc_stringify_error(rv));
	}
}

/*
 * Make sure the slot has a handle to the chip that is there now (slot lock
 * held).  A handle from an earlier generation is stale and replaced.
 */
static int
pcsc_slot_connect(struct pcsc_link *l, struct pcsc_slot *s)
{
	LONG rv = SCARD_F_INTERNAL_ERROR;
	uint64_t gen = 0;
	int attempt, r = ML_ERR_INTERNAL;

	if (s->connected) {
		if (s->conn_gen == pcsc_cached_gen(l, s)) {
			return 0;
		}
		pcsc_slot_drop(s);
	}
	for (attempt = 0; attempt < 2; attempt++) {
		ML_TRY(pcsc_ctx_ensure(&s->ctx));
		rv = SCardConnect(s->ctx.h, s->reader, SCARD_SHARE_SHARED,
		    SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &s->card, &s->proto);
		if (!pcsc_dead(rv)) {
			break;
		}
		pcsc_ctx_drop(&s->ctx);
	}
	if (rv != SCARD_S_SUCCESS) {
		r = pcsc_fail(rv, "SCardConnect", s->reader);
		goto out;
	}
	s->connected = true;
	/*
	 * Look after connecting: a swap after this point makes the handle
	 * fail with SCARD_W_REMOVED_CARD rather than talk to the new chip
	 * under the old generation.
	 */
	if ((r = pcsc_refresh(l, s, &gen)) != 0) {
		pcsc_slot_drop(s);
		goto out;
	}
	s->conn_gen = gen;
	pcsc_slot_begin(s);
	r = 0;
out:
	return r;
}

static const SCARD_IO_REQUEST *
pcsc_pci(DWORD proto)
{
	switch (proto) {
	case SCARD_PROTOCOL_T0:
		return SCARD_PCI_T0;
	case SCARD_PROTOCOL_T1:
		return SCARD_PCI_T1;
	default:
		return SCARD_PCI_RAW;
	}
}

/* Reader names, NUL-separated, ending in an empty name.  Caller frees. */
static int
pcsc_list_readers(struct pcsc_ctx *c, char **ret_list, DWORD *ret_len)
{
	char *list = NULL;
	DWORD len = 0;
	LONG rv;
	int r = ML_ERR_INTERNAL;

	rv = SCardListReaders(c->h, NULL, NULL, &len);
	if (rv == SCARD_S_SUCCESS) {
		ML_ENSURE(len > 0, ML_ERR_NOT_FOUND);
		ML_ENSURE((list = calloc(1, (size_t)len + 1)) != NULL,
		    ML_ERR_NOMEM);
		rv = SCardListReaders(c->h, NULL, list, &len);
	}
	if (rv != SCARD_S_SUCCESS) {
		r = pcsc_fail(rv, "SCardListReaders", NULL);
		goto out;
	}
	*ret_list = list;
	*ret_len = len;
	list = NULL;
	r = 0;
out:
	free(list);
	return r;
}

static void
pcsc_close(void *state)
{
	struct pcsc_link *l = state;
	size_t i;

	if (l == NULL) {
		return;
	}
	for (i = 0; i < l->nslots; i++) {
		pcsc_slot_drop(&l->slots[i]);
		pcsc_ctx_drop(&l->slots[i].ctx);
		pthread_mutex_destroy(&l->slots[i].lock);
	}
	pcsc_ctx_drop(&l->status_ctx);
	pcsc_ctx_drop(&l->wait_ctx);
	pthread_mutex_destroy(&l->state_mu);
	pthread_mutex_destroy(&l->wait_mu);
	free(l);
}

/*
 * arg is the reader name filter ("" for every reader).  The slots are the
 * matching readers at open time, in pcscd's order.  ML_ERR_NOT_FOUND when
 * none match, ML_ERR_IO when pcscd cannot be reached.
 */
static int
pcsc_open(const char *arg, void **ret_state)
{
	struct pcsc_ctx list_ctx = { .valid = false };
	struct pcsc_link *l = NULL;
	pthread_mutexattr_t ma;
	bool ma_init = false;
	char *names = NULL;
	const char *p;
	DWORD *ev = NULL;
	DWORD names_len = 0;
	size_t n = 0, i;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(arg != NULL, ML_ERR_ARG);
	ML_TRY(pcsc_ctx_ensure(&list_ctx));
	ML_TRY(pcsc_list_readers(&list_ctx, &names, &names_len));
	for (p = names; *p != '\0'; p += strlen(p) + 1) {
		if (strstr(p, arg) != NULL && strlen(p) < MAX_READERNAME) {
			n++;
		}
	}
	if (n == 0) {
		r = ml_errf(ML_ERR_NOT_FOUND, "pcsc: no reader name contains "
		    "\"%s\"", arg);
		goto out;
	}
	ML_ENSURE((l = calloc(1, sizeof(*l) + n * sizeof(l->slots[0]))) !=
	    NULL, ML_ERR_NOMEM);
	ML_ENSURE(pthread_mutexattr_init(&ma) == 0, ML_ERR_NOMEM);
	ma_init = true;
	ML_ENSURE(pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE) == 0,
	    ML_ERR_INTERNAL);
	ML_ENSURE(pthread_mutex_init(&l->state_mu, NULL) == 0, ML_ERR_NOMEM);
	ML_ENSURE(pthread_mutex_init(&l->wait_mu, NULL) == 0, ML_ERR_NOMEM);
	/* The list context becomes the status context. */
	l->status_ctx = list_ctx;
	list_ctx.valid = false;
	for (p = names, i = 0; *p != '\0'; p += strlen(p) + 1) {
		if (strstr(p, arg) == NULL || strlen(p) >= MAX_READERNAME) {
			continue;
		}
		ML_ENSURE(pthread_mutex_init(&l->slots[i].lock, &ma) == 0,
		    ML_ERR_NOMEM);
		memcpy(l->slots[i].reader, p, strlen(p) + 1);
		l->nslots = ++i;	/* close() undoes what is counted */
	}
	ML_TRY(pcsc_ctx_ensure(&l->wait_ctx));

	/* First look: chips present now get generation 1. */
	ML_ENSURE((ev = calloc(n, sizeof(*ev))) != NULL, ML_ERR_NOMEM);
	pthread_mutex_lock(&l->state_mu);
	r = pcsc_poll_locked(l, 0, n, ev);
	pthread_mutex_unlock(&l->state_mu);
	ML_TRY(r);
	for (i = 0; i < n; i++) {
		l->slots[i].wait_known = ev[i];
	}
	ml_debug("pcsc: %zu slot(s) for \"%s\"", n, arg);
	*ret_state = l;
	l = NULL;
	r = 0;
out:
	if (ma_init) {
		pthread_mutexattr_destroy(&ma);
	}
	if (l != NULL) {
		/* Mutexes not yet initialised are all-zero and unused. */
		pcsc_close(l);
	}
	pcsc_ctx_drop(&list_ctx);
	free(names);
	free(ev);
	return r;
}

static size_t
pcsc_nslots(void *state)
{
	const struct pcsc_link *l = state;

	return l == NULL ? 0 : l->nslots;
}

static int
pcsc_slot_info(void *state, size_t slot, struct chiplink_slot_info *ret)
{
	struct pcsc_link *l = state;
	struct chiplink_slot_info info;
	struct pcsc_slot *s;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(l != NULL && ret != NULL && slot < l->nslots, ML_ERR_ARG);
	s = &l->slots[slot];
	memset(&info, 0, sizeof(info));
	(void)snprintf(info.name, sizeof(info.name), "%s", s->reader);
	pthread_mutex_lock(&l->state_mu);
	r = pcsc_poll_locked(l, slot, 1, NULL);
	info.present = s->present;
	info.generation = s->generation;
	pthread_mutex_unlock(&l->state_mu);
	ML_TRY(r);
	*ret = info;
	r = 0;
out:
	return r;
}

static int
pcsc_transmit(void *state, size_t slot, uint64_t generation,
    const uint8_t *cmd, size_t cmd_len, uint8_t *resp, size_t resp_cap,
    size_t *ret_len)
{
	struct pcsc_link *l = state;
	struct pcsc_slot *s = NULL;
	uint64_t gen = 0;
	DWORD rlen;
	LONG rv;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(l != NULL && slot < l->nslots, ML_ERR_ARG);
	ML_ENSURE(cmd != NULL && cmd_len >= 4 && resp != NULL &&
	    ret_len != NULL, ML_ERR_ARG);
	ML_ENSURE(cmd_len <= MAX_BUFFER_SIZE_EXTENDED, ML_ERR_TOO_LARGE);
	s = &l->slots[slot];
	pthread_mutex_lock(&s->lock);
	ML_TRY(pcsc_slot_connect(l, s));
	ML_ENSURE(generation == 0 || generation == s->conn_gen,
	    ML_ERR_REMOVED);
	if (s->lost_gen != 0 && s->lost_gen == s->conn_gen) {
		/*
		 * The handle was dropped after a failed exchange (a reset by
		 * another client can show as an answer without a status
		 * word) and this one is new: the chip is the same but its
		 * selection and login may be gone, and a fresh handle is not
		 * told SCARD_W_RESET_CARD.  Say so before sending anything,
		 * so that chipcmd_send() restores them (OP-3).  Another chip
		 * swapped in since starts afresh.
		 */
		s->lost_gen = 0;
		r = ML_ERR_RESET;
		goto out;
	}
	rlen = resp_cap > MAX_BUFFER_SIZE_EXTENDED ?
	    MAX_BUFFER_SIZE_EXTENDED : (DWORD)resp_cap;
	rv = SCardTransmit(s->card, pcsc_pci(s->proto), cmd, (DWORD)cmd_len,
	    NULL, resp, &rlen);
	if (rv != SCARD_S_SUCCESS) {
		r = pcsc_fail(rv, "SCardTransmit", s->reader);
		if (rv == SCARD_W_RESET_CARD && pcsc_slot_reset(s) == 0) {
			/* Same chip, fresh RAM: the caller restores the
			 * selection and login (chipcmd_send). */
			r = ML_ERR_RESET;
			goto out;
		}
		if (rv == SCARD_W_RESET_CARD) {
			pcsc_bump_gen(l, s);
		}
		if (r == ML_ERR_REMOVED || r == ML_ERR_IO) {
			/* The next call starts over with a fresh handle. */
			pcsc_slot_drop(s);
			s->lost_gen = s->conn_gen;
			if (r == ML_ERR_REMOVED) {
				(void)pcsc_refresh(l, s, NULL);
			}
		}
		goto out;
	}
	if (rlen < 2) {
		/*
		 * No status word: the chip went away mid-exchange (vpcd
		 * reports a dropped virtual card as an empty answer).  Start
		 * over next time; if the chip is gone or changed, say so.
		 */
		pcsc_slot_drop(s);
		s->lost_gen = s->conn_gen;
		r = ML_ERR_IO;
		if (pcsc_refresh(l, s, &gen) == 0 && (gen != s->conn_gen ||
		    !pcsc_is_present(l, s))) {
			r = ML_ERR_REMOVED;
		}
		(void)ml_errf(r, "reader %s: the chip answered without a "
		    "status word%s", s->reader, r == ML_ERR_REMOVED ?
		    " (removed)" : "");
		goto out;
	}
	ML_ENSURE(rlen <= resp_cap, ML_ERR_FORMAT);
	*ret_len = rlen;
	r = 0;
out:
	if (s != NULL) {
		pthread_mutex_unlock(&s->lock);
	}
	return r;
}

static void
pcsc_lock(void *state, size_t slot)
{
	struct pcsc_link *l = state;
	struct pcsc_slot *s;

	if (l == NULL || slot >= l->nslots) {
		return;
	}
	s = &l->slots[slot];
	pthread_mutex_lock(&s->lock);
	if (s->depth++ == 0) {
		/*
		 * Connecting begins the PC/SC transaction (depth > 0).  No chip
		 * yet is fine: the first transmit connects and begins it.
		 */
		(void)pcsc_slot_connect(l, s);
	}
}

static void
pcsc_unlock(void *state, size_t slot)
{
	struct pcsc_link *l = state;
	struct pcsc_slot *s;

	if (l == NULL || slot >= l->nslots) {
		return;
	}
	s = &l->slots[slot];
	if (s->depth > 0 && --s->depth == 0 && s->in_txn) {
		(void)SCardEndTransaction(s->card, SCARD_LEAVE_CARD);
		s->in_txn = false;
	}
	pthread_mutex_unlock(&s->lock);
}

static int64_t
pcsc_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What chiplink_wait() reports: presence and the event counter. */
static bool
pcsc_presence_differs(DWORD a, DWORD b)
{
	const DWORD mask = SCARD_STATE_PRESENT | PCSC_NOT_USABLE;

	return (a & mask) != (b & mask) || (a >> 16) != (b >> 16);
}

/*
 * Wait for a presence change on any slot.  Changes that are not about
 * presence (another client connecting: INUSE, EXCLUSIVE) are absorbed and
 * the wait goes on for the time left.  One slot is reported per call; other
 * slots that changed meanwhile are reported by the following calls.
 */
static int
pcsc_wait(void *state, int timeout_ms, size_t *ret_slot)
{
	struct pcsc_link *l = state;
	SCARD_READERSTATE *rs = NULL;
	int64_t deadline = 0, left;
	DWORD ev = 0, tmo;
	LONG rv;
	size_t i;
	bool locked = false;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(l != NULL && ret_slot != NULL, ML_ERR_ARG);
	ML_ENSURE((rs = calloc(l->nslots, sizeof(*rs))) != NULL, ML_ERR_NOMEM);
	if (timeout_ms > 0) {
		deadline = pcsc_now_ms() + timeout_ms;
	}
	pthread_mutex_lock(&l->wait_mu);
	locked = true;
	for (;;) {
		if (timeout_ms < 0) {
			tmo = INFINITE;
		} else if (timeout_ms == 0) {
			tmo = 0;
		} else {
			left = deadline - pcsc_now_ms();
			tmo = left > 0 ? (DWORD)left : 0;
		}
		ML_TRY(pcsc_ctx_ensure(&l->wait_ctx));
		for (i = 0; i < l->nslots; i++) {
			rs[i].szReader = l->slots[i].reader;
			rs[i].dwCurrentState = l->slots[i].wait_known;
			rs[i].dwEventState = 0;
		}
		rv = SCardGetStatusChange(l->wait_ctx.h, tmo, rs,
		    (DWORD)l->nslots);
		if (pcsc_dead(rv)) {
			pcsc_ctx_drop(&l->wait_ctx);
		}
		if (rv != SCARD_S_SUCCESS) {
			r = rv == SCARD_E_TIMEOUT ? ML_ERR_TIMEOUT :
			    pcsc_fail(rv, "SCardGetStatusChange", NULL);
			goto out;
		}
		for (i = 0; i < l->nslots; i++) {
			ev = rs[i].dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
			if ((rs[i].dwEventState & SCARD_STATE_CHANGED) == 0) {
				continue;
			}
			if (pcsc_presence_differs(ev, l->slots[i].wait_known)) {
				break;
			}
			l->slots[i].wait_known = ev;	/* not about presence */
		}
		if (i < l->nslots) {
			break;
		}
		if (timeout_ms == 0 ||
		    (timeout_ms > 0 && pcsc_now_ms() >= deadline)) {
			r = ML_ERR_TIMEOUT;
			goto out;
		}
	}
	l->slots[i].wait_known = ev;
	pthread_mutex_lock(&l->state_mu);
	pcsc_note_state(&l->slots[i], ev);
	pthread_mutex_unlock(&l->state_mu);
	*ret_slot = i;
	r = 0;
out:
	if (locked) {
		pthread_mutex_unlock(&l->wait_mu);
	}
	free(rs);
	return r;
}

#else	/* !MINTLINE_HAVE_PCSC: built without libpcsclite */

static int
pcsc_open(const char *arg, void **ret_state)
{
	ml_debug("pcsc: this build has no PC/SC support");
	return ML_ERR_UNSUPPORTED;
}

static void
pcsc_close(void *state)
{
}

static size_t
pcsc_nslots(void *state)
{
	return 0;
}

static int
pcsc_slot_info(void *state, size_t slot, struct chiplink_slot_info *ret)
{
	return ML_ERR_UNSUPPORTED;
}

static int
pcsc_transmit(void *state, size_t slot, uint64_t generation,
    const uint8_t *cmd, size_t cmd_len, uint8_t *resp, size_t resp_cap,
    size_t *ret_len)
{
	return ML_ERR_UNSUPPORTED;
}

static void
pcsc_lock(void *state, size_t slot)
{
}

static void
pcsc_unlock(void *state, size_t slot)
{
}

static int
pcsc_wait(void *state, int timeout_ms, size_t *ret_slot)
{
	return ML_ERR_UNSUPPORTED;
}

#endif	/* MINTLINE_HAVE_PCSC */

const struct chiplink_ops chiplink_pcsc_ops = {
	.name		= "pcsc",
	.open		= pcsc_open,
	.close		= pcsc_close,
	.nslots		= pcsc_nslots,
	.slot_info	= pcsc_slot_info,
	.transmit	= pcsc_transmit,
	.lock		= pcsc_lock,
	.unlock		= pcsc_unlock,
	.wait		= pcsc_wait,
	.feed		= NULL,
};
