/*
 * Card OS internals shared by the core (chip.c) and the profiles
 * (applet_reader.c, applet_note.c, applet_idcard.c).  Not a host API.
 */
#ifndef CHIP_INT_H
#define CHIP_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "ml_ossl.h"
#include "ml_rd.h"
#include "ml_wr.h"
#include "apdu.h"
#include "chip.h"
#include "chip_proto.h"
#include "store.h"
#include "sw.h"

#define PIN_SALT_LEN	16

struct chip_pin {
	bool		 set;
	uint8_t		 salt[PIN_SALT_LEN];
	uint8_t		 hash[ML_SHA256_LEN];	/* SHA-256(salt || PIN) */
	uint8_t		 tries_left;
	uint8_t		 max_tries;
};

struct chip_obj {
	uint16_t	 id;
	uint8_t		 cls;		/* OBJ_CLASS_* */
	uint8_t		 flags;		/* OBJ_F_* */
	uint8_t		*attrs;		/* host-owned opaque blob */
	size_t		 attrs_len;
	bool		 has_point;
	uint8_t		 point[ML_P256_PUB_LEN];
	bool		 has_priv;
	uint8_t		 priv[ML_P256_PRIV_LEN];	/* never leaves the chip */
	struct ml_p256_key *key;	/* RAM cache of priv, lazily loaded */
};

/* Reader ID-card cache entry (volatile: RAM only, ID-9). */
struct cache_entry {
	bool		 used;
	uint8_t		 config[CACHE_MAX_CONFIG];
	size_t		 config_len;
	uint8_t		*data;		/* encrypted ID data (ID-7) */
	size_t		 data_len;
	uint8_t		*plain_ct;	/* plaintext sealed under the random key (ID-11) */
	size_t		 plain_ct_len;
	uint8_t		 plain_iv[ML_GCM_IV_LEN];
	uint8_t		 plain_tag[ML_GCM_TAG_LEN];
	uint32_t	 seq;		/* insertion order: oldest is evicted */
};

#define CHIP_MAX_SECRETS	8

struct chip_secret {
	bool		 used;
	uint8_t		 key[ML_AES256_KEY_LEN];
};

/* The persistent part: serialized into the store on every commit. */
struct chip_state {
	enum chip_kind	 kind;
	char		 serial[CHIP_SERIAL_LEN + 1];
	char		 label[LABEL_MAX_LEN + 1];
	uint16_t	 flags;		/* INFO_F_INITIALIZED | ..._LOCKED | ... */
	struct chip_pin	 user_pin;
	struct chip_pin	 so_pin;
	struct chip_obj	*objs;
	size_t		 nobjs;
	uint16_t	 next_id;

	/* note */
	uint8_t		 issuers[NOTE_MAX_ISSUERS][ML_P256_PUB_LEN];
	size_t		 nissuers;
	bool		 has_server;
	uint8_t		 server_pub[ML_P256_PUB_LEN];
	uint8_t		*feature;	/* written feature information */
	size_t		 feature_len;
	uint8_t		 feat_challenge[NOTE_CHALLENGE_LEN];
	uint8_t		 feat_sig[ML_P256_SIG_LEN];
	uint8_t		 feat_issuer;

	/* reader */
	uint8_t		 cache_mode;	/* CACHE_MODE_* */

	/* idcard */
	uint8_t		 card_config[CACHE_MAX_CONFIG];
	size_t		 card_config_len;
	uint8_t		*card_data;
	size_t		 card_data_len;

	/* sam: the key that opens ID data (ID-10); never leaves the chip */
	bool		 has_sam_key;
	uint8_t		 sam_key[32];		/* IDC_SAM_KEY_LEN */
};

/* Login state (RAM). */
enum chip_login {
	LOGIN_NONE = 0,
	LOGIN_USER = 1,
	LOGIN_SO = 2,
};

struct chip {
	char		*path;
	struct store	*store;
	struct chip_state st;

	/* RAM: lost at reset (selection, login, challenge) or power-off */
	bool		 dead;		/* RAM and flash could not be reconciled */
	bool		 selected;
	enum chip_login	 login;
	uint8_t		*pending;	/* GET RESPONSE remainder */
	size_t		 pending_len, pending_off;
	uint8_t		*last;		/* last committed payload (rollback) */
	size_t		 last_len;
	uint8_t		 atr[32];
	size_t		 atr_len;

	/* note (RAM) */
	bool		 challenge_live;
	uint8_t		 challenge[NOTE_CHALLENGE_LEN];
	bool		 authorized;
	uint8_t		 auth_digest[ML_SHA256_LEN];	/* SHA-256 of the feature */
	uint8_t		 auth_sig[ML_P256_SIG_LEN];
	uint8_t		 auth_challenge[NOTE_CHALLENGE_LEN];
	uint8_t		 auth_issuer;

	/* reader (RAM, volatile by design: ID-9, ID-12) */
	struct cache_entry cache[CACHE_MAX_ENTRIES];
	bool		 has_cache_key;
	uint8_t		 cache_key[ML_AES256_KEY_LEN];	/* the random key, ID-11 */
	uint32_t	 cache_seq;	/* next cache_entry.seq */
	struct chip_secret secrets[CHIP_MAX_SECRETS];
};

/*
 * A profile INS table entry.  `allowed` is a mask over the profile's own
 * states (profile->state() returns exactly one bit).  Handlers append
 * response data to resp and return 0 or a negative ML_ERR_*, or a positive
 * status word (>= 0x6000) when a specific SW is the answer (63Cx ...).
 */
struct ins_entry {
	uint8_t		 cla;
	uint8_t		 ins;
	unsigned	 allowed;
	int		(*fn)(struct chip *, const struct apdu *, struct ml_wr *);
	const char	*name;		/* for docs/apdu.md */
};

struct chip_profile {
	enum chip_kind		 kind;
	const char		*name;
	const struct ins_entry	*ins;
	size_t			 nins;
	unsigned		(*state)(const struct chip *);
	const char *const	*state_names;	/* bit i -> name, for docs */
	size_t			 nstates;
	void			(*reset)(struct chip *);	/* RAM cleanup */
};

extern const struct chip_profile chip_profile_core;
extern const struct chip_profile chip_profile_reader;
extern const struct chip_profile chip_profile_note;
extern const struct chip_profile chip_profile_idcard;
extern const struct chip_profile chip_profile_sam;

const struct chip_profile *chip_profile_for(enum chip_kind kind);

/* Core services for profile handlers. */
/* Serialize st and commit it (tear-safe).  On failure the RAM state is
 * reloaded from the store so RAM and flash agree. */
ML_MUST_CHECK int chip_commit(struct chip *c);
ML_MUST_CHECK int chip_need_login(const struct chip *c, enum chip_login who);
struct chip_obj	*chip_obj_find(struct chip *c, uint16_t id);
/* The chip authentication key (OBJ_F_CHIPKEY private key), or NULL. */
struct chip_obj	*chip_chipkey(struct chip *c);
/* Loaded key for a private-key object (cached). */
ML_MUST_CHECK int chip_obj_key(struct chip_obj *o, const struct ml_p256_key **ret);
/* Append a new key pair object pair; returns ids. */
ML_MUST_CHECK int chip_gen_keypair(struct chip *c, uint8_t flags,
    const uint8_t *priv_attrs, size_t priv_len, const uint8_t *pub_attrs,
    size_t pub_len, uint16_t *ret_priv_id, uint16_t *ret_pub_id);
/* The core's GET DATA (P1 GD_CHIP_INFO); profiles delegate other P1s. */
int		 core_get_data(struct chip *c, const struct apdu *a, struct ml_wr *resp);
/* The core's GET CHALLENGE: Ne random bytes. */
int		 core_get_challenge(struct chip *c, const struct apdu *a, struct ml_wr *resp);

/*
 * The personalised-once stand-in profiles (ID card, SAM): PERSO until LOCK,
 * ISSUED after it, for good.  chip_perso_state() is their state function
 * and chip_perso_state_names its names; chip_perso_lock() is their LOCK
 * (80 74 00 00, no data): 6985 unless the profile says its personalisation
 * is complete, else INFO_F_LOCKED set and committed.
 */
enum chip_perso_state {
	CHIP_PERSO	= 1 << 0,	/* being personalised */
	CHIP_ISSUED	= 1 << 1,	/* locked */
};
extern const char *const chip_perso_state_names[2];
unsigned	 chip_perso_state(const struct chip *c);
ML_MUST_CHECK int chip_perso_lock(struct chip *c, const struct apdu *a,
    bool complete);

/* SW for an error from a handler (the single ML_ERR -> SW translation). */
uint16_t	 ml_err_to_sw(int r);

/*
 * Copy the bytes left in v into a new allocation (at least one byte, so an
 * empty field is not NULL).  Returns 0 and sets *ret / *ret_len, which the
 * caller frees, or ML_ERR_NOMEM with both untouched.  v does not move.
 */
ML_MUST_CHECK int chip_dup_bytes(const struct ml_rd *v, uint8_t **ret,
    size_t *ret_len);
/* Free what an object holds (wiping the private scalar). */
void		 chip_obj_clear(struct chip_obj *o);
/* Wipe RAM-only reader cache and keys (ID-9, ID-12). */
void		 chip_reader_forget(struct chip *c, bool all);

#endif
