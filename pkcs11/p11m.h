/*
 * mintline-pkcs11 internals: one header for the module's managers
 * (module/slot, session, object, attribute rules, mechanisms, chip
 * connection).  Nothing here is exported from the .so: the version script
 * exports only C_GetFunctionList, C_GetInterfaceList and C_GetInterface.
 *
 * Locking (outermost first; never take an earlier lock while holding a
 * later one):
 *	session->lock	one caller per session at a time
 *	slot->lock	token state: chip info, login state, object cache;
 *			held across every APDU sequence (with chiplink_lock)
 *	mod->lock	the session table and handle counters (a leaf)
 */
#ifndef P11M_H
#define P11M_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <p11-kit/pkcs11.h>

#include "p11m_v3.h"
#include "ml_err.h"
#include "ml_ossl.h"
#include "ml_wr.h"
#include "chip.h"
#include "chip_proto.h"

struct chiplink;

#define P11M_LIB_MAJOR		0
#define P11M_LIB_MINOR		1
#define P11M_MANUFACTURER	"mintline"
#define P11M_MAX_TRANSPORTS	8
#define P11M_SLOTS_PER_TRANSPORT 256	/* slot ID = transport * 256 + pos */
#define P11M_MAX_TMPL_ATTRS	64	/* attributes in one blob/template */
#define P11M_MAX_ATTR_LEN	OBJ_MAX_ATTRS
#define P11M_MAX_SECRET_LEN	64
#define P11M_MAX_DATA		(64 * 1024)	/* one sign/encrypt input */
#define P11M_DEFAULT_CONF	SYSCONFDIR "/mintline/pkcs11.conf"
#define P11M_DEFAULT_LINE	LOCALSTATEDIR "/lib/mintline/line"

/* ---- attributes in memory (template.c) ---- */

/* How a value is encoded in memory and in the chip's attribute blob. */
enum p11m_akind {
	P11M_AK_BYTES = 0,	/* opaque bytes, any length */
	P11M_AK_BOOL,		/* CK_BBOOL in memory, 1 byte in the blob */
	P11M_AK_ULONG,		/* CK_ULONG in memory, u64be in the blob */
	P11M_AK_DATE,		/* CK_DATE: 8 bytes or empty */
};

struct p11m_attr {
	CK_ATTRIBUTE_TYPE	 type;
	CK_ULONG		 len;
	uint8_t			*val;	/* owned, wiped on free; NULL if len 0 */
};

/* An attribute set, in insertion order, each type at most once. */
struct p11m_attrs {
	struct p11m_attr	*v;
	size_t			 n;
	size_t			 cap;
};

enum p11m_akind	 p11m_attr_kind(CK_ATTRIBUTE_TYPE type);
void		 p11m_attrs_free(struct p11m_attrs *a);	/* wipes; NULL-safe */
const struct p11m_attr *p11m_attrs_get(const struct p11m_attrs *a,
    CK_ATTRIBUTE_TYPE type);
/* Set (replace or append) a copy of val.  CKR_OK or CKR_HOST_MEMORY. */
CK_RV		 p11m_attrs_set(struct p11m_attrs *a, CK_ATTRIBUTE_TYPE type,
    const void *val, CK_ULONG len);
CK_RV		 p11m_attrs_set_bool(struct p11m_attrs *a, CK_ATTRIBUTE_TYPE type,
    bool v);
CK_RV		 p11m_attrs_set_ulong(struct p11m_attrs *a,
    CK_ATTRIBUTE_TYPE type, CK_ULONG v);
void		 p11m_attrs_del(struct p11m_attrs *a, CK_ATTRIBUTE_TYPE type);
CK_RV		 p11m_attrs_copy(const struct p11m_attrs *src,
    struct p11m_attrs *ret);
bool		 p11m_attrs_bool(const struct p11m_attrs *a,
    CK_ATTRIBUTE_TYPE type, bool def);
/* true and *ret if present with the right size. */
bool		 p11m_attrs_ulong(const struct p11m_attrs *a,
    CK_ATTRIBUTE_TYPE type, CK_ULONG *ret);
/* Does a match every entry of a search template (C_FindObjectsInit)? */
bool		 p11m_attrs_match(const struct p11m_attrs *a,
    const CK_ATTRIBUTE *tmpl, CK_ULONG n);

/* ---- the chip's opaque attribute blob (template.c) ---- */

#define P11M_BLOB_VERSION	1

/*
 * Serialize the persistent attributes of a into w:
 *	u8 version(1) | u16be count | count * (u32be type | u16be len | value)
 * BOOL as one byte, ULONG as u64be, everything else as is.  Returns 0 or
 * ML_ERR_TOO_LARGE (over w's limit or a value over 65535 bytes).
 */
ML_MUST_CHECK int p11m_blob_write(const struct p11m_attrs *a,
    struct ml_wr *w);
/*
 * Parse a blob.  Returns 0 with *ret filled (caller frees), or
 * ML_ERR_SHORT, ML_ERR_FORMAT (bad version, duplicate type, bad value size
 * for the type's kind), ML_ERR_TOO_LARGE (count or total over limits),
 * ML_ERR_TRAILING, ML_ERR_NOMEM.  *ret untouched on failure.
 */
ML_MUST_CHECK int p11m_blob_parse(const uint8_t *p, size_t n,
    struct p11m_attrs *ret);

/* ---- attribute rules (attr_rules.c) ---- */

enum p11m_aop {
	P11M_AOP_CREATE,	/* C_CreateObject */
	P11M_AOP_GENERATE,	/* C_GenerateKey(Pair) */
	P11M_AOP_DERIVE,	/* C_DeriveKey */
	P11M_AOP_SET,		/* C_SetAttributeValue */
	P11M_AOP_COPY,		/* C_CopyObject */
};

/*
 * The one checker for every creating and modifying call.  cls and kt
 * select the rule table (kt ignored for non-keys).  For CREATE, GENERATE
 * and DERIVE, *ret gets the table defaults overlaid with tmpl; for SET and
 * COPY, a copy of cur with tmpl applied.  is_so: the SO is logged in
 * (footnote 10).  Returns CKR_OK or the exact CKR of the first violation:
 * CKR_ATTRIBUTE_TYPE_INVALID, CKR_ATTRIBUTE_VALUE_INVALID,
 * CKR_ATTRIBUTE_READ_ONLY, CKR_TEMPLATE_INCOMPLETE,
 * CKR_TEMPLATE_INCONSISTENT, CKR_ACTION_PROHIBITED, CKR_HOST_MEMORY.
 * *ret untouched on failure.
 */
CK_RV		 p11m_attr_apply(enum p11m_aop op, CK_OBJECT_CLASS cls,
    CK_KEY_TYPE kt, const CK_ATTRIBUTE *tmpl, CK_ULONG n,
    const struct p11m_attrs *cur, bool is_so, struct p11m_attrs *ret);
/*
 * C_GetAttributeValue for one attribute of an object (variable-length
 * convention, v2.40 §5.7): CKR_OK, CKR_ATTRIBUTE_SENSITIVE,
 * CKR_ATTRIBUTE_TYPE_INVALID, CKR_BUFFER_TOO_SMALL; t->ulValueLen set
 * (CK_UNAVAILABLE_INFORMATION on every failure).
 */
CK_RV		 p11m_attr_get(CK_OBJECT_CLASS cls, CK_KEY_TYPE kt,
    const struct p11m_attrs *a, CK_ATTRIBUTE *t);
/* The first entry of type in a template, or NULL; its value is unchecked. */
const CK_ATTRIBUTE *p11m_tmpl_find(const CK_ATTRIBUTE *tmpl, CK_ULONG n,
    CK_ATTRIBUTE_TYPE type);
/* Class and key type named by a template; CKR_TEMPLATE_INCOMPLETE if a
 * needed one is absent and def is (CK_ULONG)-1. */
CK_RV		 p11m_tmpl_class(const CK_ATTRIBUTE *tmpl, CK_ULONG n,
    CK_OBJECT_CLASS def_cls, CK_KEY_TYPE def_kt, CK_OBJECT_CLASS *ret_cls,
    CK_KEY_TYPE *ret_kt);
/* Is this attribute stored in the chip blob (not module-computed)? */
bool		 p11m_attr_persistent(CK_ATTRIBUTE_TYPE type);

/* The variable-length output convention (v2.40 §5.2), in one place. */
CK_RV		 p11m_out(const uint8_t *src, size_t n, CK_BYTE_PTR dst,
    CK_ULONG_PTR dst_len);

/* ---- objects: the cache (object.c), the calls (object_ops.c) ---- */

struct p11m_obj {
	CK_OBJECT_HANDLE	 h;
	CK_OBJECT_CLASS		 cls;
	CK_KEY_TYPE		 kt;		/* (CK_ULONG)-1 for non-keys */
	bool			 token;		/* on the chip */
	bool			 priv;		/* CKA_PRIVATE */
	struct p11m_attrs	 a;		/* every attribute shown */

	/* token objects */
	uint16_t		 chip_id;
	uint8_t			 chip_flags;	/* OBJ_F_* */
	/* session objects */
	CK_SESSION_HANDLE	 owner;

	/* keys */
	bool			 has_point;	/* point known (verify) */
	bool			 chip_point;	/* ... and held by the chip */
	uint8_t			 point[ML_P256_PUB_LEN];
	struct ml_p256_key	*pub;		/* loaded lazily for C_Verify */
	uint8_t			*secret;	/* module-held secret key value */
	size_t			 secret_len;
	int			 chip_secret;	/* chip volatile key handle, -1 */
	int			 vendor;	/* P11M_VOBJ_* for synthetic objects */

	/* indexes */
	struct p11m_obj		*next_h, *next_label, *next_id, *next_class;
	size_t			 pos;		/* in objset.v */
};

enum {
	P11M_VOBJ_NONE = 0,
	P11M_VOBJ_FEATURE,	/* note: READ FEATURE as a CKO_DATA object */
	P11M_VOBJ_CHIPPUB,	/* note: GET DATA 02 as a CKO_PUBLIC_KEY */
	P11M_VOBJ_ISSUER,	/* note: GET DATA 04, one CKO_PUBLIC_KEY each */
};

#define P11M_NBUCKETS	1024
#define P11M_NCLASSES	8	/* CKO_DATA..CKO_SECRET_KEY; the rest share one */

/* Every object of one token (token and session objects), indexed. */
struct p11m_objset {
	struct p11m_obj	**v;
	size_t		  n, cap;
	struct p11m_obj	 *by_h[P11M_NBUCKETS];
	struct p11m_obj	 *by_label[P11M_NBUCKETS];
	struct p11m_obj	 *by_id[P11M_NBUCKETS];
	struct p11m_obj	 *by_class[P11M_NCLASSES];
	bool		  loaded;	/* chip objects listed */
	size_t		  nsession;	/* session objects among v */
	uint16_t	 *pending;	/* private chip objects not yet read */
	size_t		  npending;
	uint8_t		 *list;		/* LIST OBJECTS answer of the load */
	size_t		  list_len;
	uint32_t	  store_gen;	/* the chip's change counter then */
};

struct p11m_slot;
struct p11m_session;

struct p11m_obj	*p11m_obj_new(void);	/* NULL on failure */
void		 p11m_obj_free(struct p11m_obj *o);
/* A note's chip key (OBJ_F_CHIPKEY): the attributes it always shows. */
CK_RV		 p11m_obj_chipkey_rule(struct p11m_obj *o);
/* Point, curve and sensitivity attributes every EC key object shows. */
CK_RV		 p11m_obj_key_fixups(struct p11m_obj *o);
/* The chip attribute blob of an object. */
ML_MUST_CHECK int p11m_obj_blob(const struct p11m_obj *o, struct ml_wr *w);
void		 p11m_objset_clear(struct p11m_objset *os);
/* Load the chip objects (slot locked).  Idempotent per generation. */
CK_RV		 p11m_objset_load(struct p11m_slot *sl);
/*
 * Another host may have changed the chip store (PC/SC readers are shared):
 * compare LIST OBJECTS with the one the cache was built from and reload
 * the token objects if it differs (their handles change).  Slot locked.
 */
CK_RV		 p11m_objset_revalidate(struct p11m_slot *sl);
/*
 * Before answering from the cache (C_FindObjectsInit): read the chip's
 * store change counter (GET DATA 01) and revalidate only if it moved since
 * the cache was checked (another process or host wrote).  Slot locked.
 */
CK_RV		 p11m_objset_sync(struct p11m_slot *sl);
/* Keep that LIST snapshot equal to the chip after our own writes:
 * add (or update) the entry of id, or remove it (cls = 0xff). */
void		 p11m_objset_list_note(struct p11m_slot *sl, uint16_t id,
    uint8_t cls, uint8_t flags, size_t attrs_len);
/* Read private objects after a user login; drop them at logout. */
CK_RV		 p11m_objset_load_private(struct p11m_slot *sl);
void		 p11m_objset_drop_private(struct p11m_slot *sl);
void		 p11m_objset_drop_session(struct p11m_slot *sl,
    CK_SESSION_HANDLE owner);
/* What session objects hold in the chip (volatile keys, session key
 * pairs) is destroyed there (C_Finalize). */
void		 p11m_objset_release_chip(struct p11m_slot *sl);
/* Take ownership of o: assign a handle and index it. */
CK_RV		 p11m_objset_add(struct p11m_slot *sl, struct p11m_obj *o);
void		 p11m_objset_remove(struct p11m_slot *sl, struct p11m_obj *o);
/* Lookup visible to the session (slot locked): NULL if none. */
struct p11m_obj	*p11m_obj_lookup(struct p11m_slot *sl,
    const struct p11m_session *s, CK_OBJECT_HANDLE h);
/* Objects visible on the slot matching tmpl, from the best index (slot
 * locked); fn is called for each and its first failure is returned. */
CK_RV		 p11m_objset_match(struct p11m_slot *sl,
    const CK_ATTRIBUTE *tmpl, CK_ULONG n,
    CK_RV (*fn)(struct p11m_obj *, void *), void *arg);
/* Destroy what a session object holds in the chip (volatile secret key,
 * session key pair objects). */
void		 p11m_obj_destroy_chip_secret(struct p11m_slot *sl,
    struct p11m_obj *o);
/* Object built from a chip object (class, flags, blob, point). */
CK_RV		 p11m_obj_from_chip(uint16_t id, uint8_t cls, uint8_t flags,
    const uint8_t *blob, size_t blob_len, const uint8_t *point,
    struct p11m_obj **ret);
/* CREATE OBJECT for a new token object; sets o's chip id and flags. */
CK_RV		 p11m_obj_create_on_chip(struct p11m_slot *sl,
    struct p11m_obj *o);
/* Write the persistent attributes of o back to the chip (UPDATE). */
CK_RV		 p11m_obj_store(struct p11m_slot *sl, struct p11m_obj *o);
/* Index maintenance when LABEL/ID change. */
void		 p11m_objset_reindex(struct p11m_slot *sl, struct p11m_obj *o,
    void (*change)(struct p11m_obj *, void *), void *arg);

CK_RV	p11m_create_object(struct p11m_session *s, CK_ATTRIBUTE_PTR tmpl,
    CK_ULONG n, CK_OBJECT_HANDLE_PTR ret_h);
CK_RV	p11m_copy_object(struct p11m_session *s, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR ret_h);
CK_RV	p11m_destroy_object(struct p11m_session *s, CK_OBJECT_HANDLE h);
CK_RV	p11m_get_object_size(struct p11m_session *s, CK_OBJECT_HANDLE h,
    CK_ULONG_PTR ret_size);
CK_RV	p11m_get_attrs(struct p11m_session *s, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n);
CK_RV	p11m_set_attrs(struct p11m_session *s, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n);
CK_RV	p11m_find_init(struct p11m_session *s, CK_ATTRIBUTE_PTR tmpl,
    CK_ULONG n);
CK_RV	p11m_find(struct p11m_session *s, CK_OBJECT_HANDLE_PTR out,
    CK_ULONG max, CK_ULONG_PTR ret_n);
CK_RV	p11m_find_final(struct p11m_session *s);

/* ---- slots and the module (slot.c) ---- */

struct p11m_slot {
	pthread_mutex_t	 lock;
	CK_SLOT_ID	 id;
	struct p11m_transport *tr;
	size_t		 pos;		/* chiplink slot index */

	/* token state, valid while gen != 0 */
	uint64_t	 gen;		/* chip generation the state is for */
	uint64_t	 seen_gen;	/* for C_WaitForSlotEvent */
	bool		 seen_present;
	bool		 recognized;
	uint8_t		 kind;		/* enum chip_kind */
	char		 serial[CHIP_SERIAL_LEN + 1];
	char		 label[LABEL_MAX_LEN + 1];
	uint16_t	 state;		/* INFO_F_* */
	uint8_t		 user_tries, so_tries, max_tries;
	uint32_t	 free_bytes;
	uint32_t	 store_gen;	/* store change counter (GET DATA 01) */
	bool		 has_store_gen;	/* ... which the chip reports */
	uint8_t		 ver_major, ver_minor;
	CK_USER_TYPE	 login;		/* (CK_ULONG)-1: nobody */
	/* The PIN of that login, kept until it ends so that the login can
	 * be restored after another client reset or logged out the shared
	 * chip (OP-3, chipcmd_send); wiped by p11m_slot_pin_forget(). */
	uint8_t		 pin[PIN_MAX_LEN];
	size_t		 pin_len;
	unsigned	 nsessions, nro;
	struct p11m_objset objs;
	/* Chip randomness not handed out yet (C_GenerateRandom); the unused
	 * part is rnd[0..rnd_len), wiped as it goes and with the slot. */
	uint8_t		 rnd[256];
	size_t		 rnd_len;
};

struct p11m_transport {
	char		*spec;
	struct chiplink	*link;		/* NULL until it opens */
	int64_t		 next_try;	/* monotonic seconds: retry after */
	struct p11m_slot *slots;
	size_t		 nslots;
};

struct p11m_module {
	pid_t		 pid;
	unsigned	 forks;		/* fork count at C_Initialize */
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	struct p11m_transport tr[P11M_MAX_TRANSPORTS];
	size_t		 ntr;
	bool		 finalizing;
	unsigned	 waiters;	/* threads in C_WaitForSlotEvent */
	struct p11m_session **sessions;	/* hash buckets */
	CK_ULONG	 next_session;
	CK_ULONG	 next_object;
};

/* The module, or NULL if not initialized in this process (fork check). */
struct p11m_module *p11m_mod(void);
/*
 * Count a call in (false: the module is not initialized or is being
 * finalized: CKR_CRYPTOKI_NOT_INITIALIZED) and out again.  C_Finalize
 * waits for every call counted in.
 */
bool	p11m_call_enter(void);
void	p11m_call_leave(void);
/* The module without the fork check (getpid() is a system call): only
 * inside a call that already passed p11m_mod(). */
struct p11m_module *p11m_mod_current(void);
CK_RV	p11m_initialize(CK_VOID_PTR args);
CK_RV	p11m_finalize(void);
CK_RV	p11m_get_info(CK_INFO_PTR info);
CK_RV	p11m_get_slot_list(CK_BBOOL present, CK_SLOT_ID_PTR list,
    CK_ULONG_PTR count);
CK_RV	p11m_get_slot_info(CK_SLOT_ID id, CK_SLOT_INFO_PTR info);
CK_RV	p11m_get_token_info(CK_SLOT_ID id, CK_TOKEN_INFO_PTR info);
CK_RV	p11m_wait_for_slot_event(CK_FLAGS flags, CK_SLOT_ID_PTR ret_slot);
CK_RV	p11m_init_token(CK_SLOT_ID id, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,
    CK_UTF8CHAR_PTR label);
/* Slot by ID: CKR_SLOT_ID_INVALID. */
CK_RV	p11m_slot_get(CK_SLOT_ID id, struct p11m_slot **ret);
/*
 * With sl->lock held: notice a chip change (dropping the old token
 * state) and, for a new chip, select the applet and read its info.
 * CKR_OK, CKR_TOKEN_NOT_PRESENT, CKR_TOKEN_NOT_RECOGNIZED, CKR_DEVICE_*.
 */
CK_RV	p11m_slot_refresh(struct p11m_slot *sl);
/*
 * Cheap presence check for calls that are answered from the cache
 * (C_FindObjectsInit, C_GetAttributeValue): CKR_DEVICE_REMOVED if the chip
 * left or changed since the token state was built.  Slot locked.
 */
CK_RV	p11m_slot_check(struct p11m_slot *sl);
/* Re-read GET DATA 01 into the slot (slot locked). */
CK_RV	p11m_slot_read_info(struct p11m_slot *sl);
/* Forget token state (slot locked). */
void	p11m_slot_forget(struct p11m_slot *sl);
/* Keep / wipe the PIN of the slot's login (slot locked). */
void	p11m_slot_pin_keep(struct p11m_slot *sl, const uint8_t *pin,
    size_t len);
void	p11m_slot_pin_forget(struct p11m_slot *sl);
CK_OBJECT_HANDLE p11m_next_object_handle(void);

/* ---- chip connection (chipconn.c) ---- */

enum p11m_ctx {
	P11M_CTX_DEFAULT = 0,
	P11M_CTX_PIN,		/* VERIFY / CHANGE / RESET RETRY / INIT */
	P11M_CTX_OBJECT,	/* READ / CREATE / UPDATE / DELETE */
	P11M_CTX_KEY,		/* SIGN / ECDH / GEN KEYPAIR with a key id */
	P11M_CTX_DECRYPT,	/* SECRET DECRYPT: a bad tag */
	P11M_CTX_MECH,		/* an INS the chip kind may lack */
};

/*
 * One APDU to the slot's chip (slot locked): chaining over 61xx with GET
 * RESPONSE, retry on 6Cxx, extended lengths when needed.  ne: expected
 * response length (0 none, up to 65536).  Returns CKR_OK with the response
 * data and *ret_sw (any status word), or the CKR for a transport failure
 * (CKR_DEVICE_REMOVED when the chip is gone or changed).
 */
CK_RV	p11m_chip_apdu(struct p11m_slot *sl, uint8_t cla, uint8_t ins,
    uint8_t p1, uint8_t p2, const uint8_t *data, size_t data_len,
    uint32_t ne, uint8_t *resp, size_t resp_cap, size_t *ret_len,
    uint16_t *ret_sw);
/* Same, but a status word other than 9000 becomes its CKR (p11m_sw_to_ckr). */
CK_RV	p11m_chip_cmd(struct p11m_slot *sl, enum p11m_ctx ctx, uint8_t cla,
    uint8_t ins, uint8_t p1, uint8_t p2, const uint8_t *data, size_t data_len,
    uint32_t ne, uint8_t *resp, size_t resp_cap, size_t *ret_len);
/* The one status word -> CKR table. */
CK_RV	p11m_sw_to_ckr(uint16_t sw, enum p11m_ctx ctx);
/* The one ML_ERR_* -> CKR table. */
CK_RV	ml_err_to_ckr(int r);
/* Hold the chip link's slot lock for a multi-APDU sequence. */
void	p11m_chip_lock(struct p11m_slot *sl);
void	p11m_chip_unlock(struct p11m_slot *sl);

/* ---- sessions (session.c) ---- */

enum p11m_need {
	P11M_NEED_RO = 0,	/* any session */
	P11M_NEED_RW,		/* CKR_SESSION_READ_ONLY */
	P11M_NEED_USER_RO,	/* CKR_USER_NOT_LOGGED_IN */
	P11M_NEED_USER_RW,
	P11M_NEED_SO_RW,
};

enum p11m_opkind {
	P11M_OP_FIND = 0,
	P11M_OP_SIGN,
	P11M_OP_VERIFY,
	P11M_OP_ENCRYPT,
	P11M_OP_DECRYPT,
	P11M_OP_DIGEST,
	P11M_OP_MAX,
};

struct p11m_op {
	bool			 active;
	CK_MECHANISM_TYPE	 mech;
	CK_OBJECT_HANDLE	 key;
	uint16_t		 chip_id;
	int			 chip_secret;
	int			 vendor;
	bool			 multi;		/* an Update was called */
	bool			 single;	/* a single-part call (or size query) */
	struct ml_sha256	*sha;
	struct ml_p256_key	*vkey;		/* verify */
	bool			 vkey_borrowed;	/* ... the session's vkey */
	uint8_t			 secret[P11M_MAX_SECRET_LEN];
	size_t			 secret_len;
	uint8_t			*iv;
	size_t			 iv_len;
	uint8_t			*aad;
	size_t			 aad_len;
	size_t			 tag_len;
	struct ml_wr		 buf;		/* buffered input */
	/* find */
	CK_OBJECT_HANDLE	*found;
	size_t			 nfound, next;
};

struct p11m_session {
	CK_SESSION_HANDLE	 h;
	struct p11m_slot	*slot;
	uint64_t		 gen;
	CK_FLAGS		 flags;
	pthread_mutex_t		 lock;
	unsigned		 refs;
	bool			 closed;
	struct p11m_op		 op[P11M_OP_MAX];
	struct ml_p256_key	*vkey;		/* last C_VerifyInit key */
	uint8_t			 vkey_point[ML_P256_PUB_LEN];
	struct p11m_session	*next;
};

CK_RV	p11m_session_enter(CK_SESSION_HANDLE h, enum p11m_need need,
    struct p11m_session **ret);
void	p11m_session_leave(struct p11m_session *s);
/* Lock/unlock the session's slot, failing if the chip has gone. */
CK_RV	p11m_session_lock_slot(struct p11m_session *s);
void	p11m_session_unlock_slot(struct p11m_session *s);
bool	p11m_session_rw(const struct p11m_session *s);
bool	p11m_session_user(const struct p11m_session *s);	/* slot locked */
CK_RV	p11m_open_session(CK_SLOT_ID id, CK_FLAGS flags,
    CK_SESSION_HANDLE_PTR ret);
CK_RV	p11m_close_session(CK_SESSION_HANDLE h);
CK_RV	p11m_close_all_sessions(CK_SLOT_ID id);
CK_RV	p11m_get_session_info(struct p11m_session *s, CK_SESSION_INFO_PTR info);
CK_RV	p11m_login(struct p11m_session *s, CK_USER_TYPE who,
    CK_UTF8CHAR_PTR pin, CK_ULONG pin_len);
CK_RV	p11m_logout(struct p11m_session *s);
CK_RV	p11m_init_pin(struct p11m_session *s, CK_UTF8CHAR_PTR pin,
    CK_ULONG pin_len);
CK_RV	p11m_set_pin(struct p11m_session *s, CK_UTF8CHAR_PTR old,
    CK_ULONG old_len, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len);
void	p11m_op_end(struct p11m_op *op);
/* Free every session (C_Finalize). */
void	p11m_sessions_free(struct p11m_module *m);

/* ---- mechanisms (mech.c) ---- */

/* Vendor mechanisms (docs/pkcs11.md, "Vendor extensions"). */
#define CKM_MINTLINE_INTERNAL_AUTH	(CKM_VENDOR_DEFINED | 0x4d4c0001UL)

CK_RV	p11m_mech_list(struct p11m_slot *sl, CK_MECHANISM_TYPE_PTR list,
    CK_ULONG_PTR count);
CK_RV	p11m_mech_info(struct p11m_slot *sl, CK_MECHANISM_TYPE type,
    CK_MECHANISM_INFO_PTR info);
CK_RV	p11m_sign_init(struct p11m_session *s, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE key);
CK_RV	p11m_sign(struct p11m_session *s, CK_BYTE_PTR data, CK_ULONG n,
    CK_BYTE_PTR sig, CK_ULONG_PTR sig_len);
CK_RV	p11m_sign_update(struct p11m_session *s, CK_BYTE_PTR data, CK_ULONG n);
CK_RV	p11m_sign_final(struct p11m_session *s, CK_BYTE_PTR sig,
    CK_ULONG_PTR sig_len);
CK_RV	p11m_verify_init(struct p11m_session *s, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE key);
CK_RV	p11m_verify(struct p11m_session *s, CK_BYTE_PTR data, CK_ULONG n,
    CK_BYTE_PTR sig, CK_ULONG sig_len);
CK_RV	p11m_verify_update(struct p11m_session *s, CK_BYTE_PTR data,
    CK_ULONG n);
CK_RV	p11m_verify_final(struct p11m_session *s, CK_BYTE_PTR sig,
    CK_ULONG sig_len);
CK_RV	p11m_digest_init(struct p11m_session *s, CK_MECHANISM_PTR m);
CK_RV	p11m_digest(struct p11m_session *s, CK_BYTE_PTR data, CK_ULONG n,
    CK_BYTE_PTR md, CK_ULONG_PTR md_len);
CK_RV	p11m_digest_update(struct p11m_session *s, CK_BYTE_PTR data,
    CK_ULONG n);
CK_RV	p11m_digest_final(struct p11m_session *s, CK_BYTE_PTR md,
    CK_ULONG_PTR md_len);
CK_RV	p11m_crypt_init(struct p11m_session *s, enum p11m_opkind k,
    CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key);
CK_RV	p11m_crypt(struct p11m_session *s, enum p11m_opkind k,
    CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV	p11m_crypt_update(struct p11m_session *s, enum p11m_opkind k,
    CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV	p11m_crypt_final(struct p11m_session *s, enum p11m_opkind k,
    CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV	p11m_generate_key(struct p11m_session *s, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR ret);
CK_RV	p11m_generate_key_pair(struct p11m_session *s, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG pub_n, CK_ATTRIBUTE_PTR priv_tmpl,
    CK_ULONG priv_n, CK_OBJECT_HANDLE_PTR ret_pub,
    CK_OBJECT_HANDLE_PTR ret_priv);
CK_RV	p11m_derive_key(struct p11m_session *s, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE base, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR ret);
CK_RV	p11m_generate_random(struct p11m_session *s, CK_BYTE_PTR out,
    CK_ULONG n);

/* DER helpers shared by object*.c and mech.c (no ASN.1 parser of ours:
 * only the two fixed shapes CKA_EC_POINT / CKA_EC_PARAMS take). */
#define P11M_EC_POINT_DER_LEN	(2 + ML_P256_PUB_LEN)
void	p11m_ec_point_der(const uint8_t point[ML_P256_PUB_LEN],
    uint8_t ret[P11M_EC_POINT_DER_LEN]);
/* Accept a raw 65-byte point or the DER OCTET STRING around it. */
CK_RV	p11m_ec_point_parse(const uint8_t *p, size_t n,
    uint8_t ret[ML_P256_PUB_LEN]);
bool	p11m_ec_params_ok(const uint8_t *p, size_t n);

/* Blank-padded fixed-width fields of the info structs. */
void	p11m_pad(CK_UTF8CHAR *dst, size_t width, const char *src);

#endif
