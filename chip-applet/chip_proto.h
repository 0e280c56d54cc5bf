/*
 * The mintline card OS command set: constants shared by the chip (this
 * directory) and its hosts (pkcs11/, station/, tests).  docs/apdu.md is
 * checked against the INS tables (tests/check-apdu-doc.sh).
 *
 * All multi-byte integers are big endian.  CLA 0x00 carries ISO 7816-4
 * commands, CLA 0x80 the proprietary ones.  Every command except SELECT and
 * GET RESPONSE needs the applet selected first (else 0x6985).
 */
#ifndef CHIP_PROTO_H
#define CHIP_PROTO_H

/* AID: RID A0 00 00 08 88, PIX 4D 4C ("ML") 01, then the chip kind. */
#define CHIP_AID_PREFIX		{ 0xA0, 0x00, 0x00, 0x08, 0x88, 0x4D, 0x4C, 0x01 }
#define CHIP_AID_PREFIX_LEN	8
#define CHIP_AID_LEN		9

#define CLA_ISO			0x00
#define CLA_PROP		0x80

/* ---- every kind ---- */
#define INS_SELECT		0xA4	/* 00 A4 04 00 Lc AID [Le] -> FCI */
#define INS_GET_RESPONSE	0xC0	/* 00 C0 00 00 Le */
#define INS_GET_DATA		0xCA	/* 00 CA P1 00 Le; P1 below */
#define INS_GET_CHALLENGE	0x84	/* 00 84 00 00 Le (1..256, 00 = 256) */
#define INS_VERIFY		0x20	/* 00 20 00 P2 [Lc PIN]; no data = query */
#define INS_CHANGE_PIN		0x24	/* 00 24 00 P2 Lc lv8(old) lv8(new) */
#define INS_RESET_RETRY		0x2C	/* 00 2C 00 81 Lc newPIN (SO logged in) */
#define INS_INIT_TOKEN		0x50	/* 80 50 00 00 Lc lv8(SO PIN) lv8(label) */
#define INS_LOGOUT		0x52	/* 80 52 00 00 */
#define INS_LIST_OBJECTS	0x60	/* 80 60 00 00 Le -> entries */
#define INS_READ_OBJECT		0x62	/* 80 62 idH idL Le -> TLV */
#define INS_CREATE_OBJECT	0x64	/* 80 64 00 00 Lc class flags attrs -> id */
#define INS_UPDATE_OBJECT	0x66	/* 80 66 idH idL Lc attrs */
#define INS_DELETE_OBJECT	0x68	/* 80 68 idH idL */
#define INS_GEN_KEYPAIR		0x46	/* 80 46 P1 00 Lc lv16(priv attrs) lv16(pub attrs) */
#define INS_SIGN		0x2A	/* 80 2A 9E 9A Lc keyid(2) digest(1..64) -> r||s */
#define INS_ECDH		0x86	/* 80 86 idH idL Lc point(65) -> x(32) */
#define INS_GEN_SECRET		0x48	/* 80 48 00 00 -> volatile AES-256 key handle(1) */
#define INS_SECRET_ENCRYPT	0x2C	/* 80 2C h 00 Lc iv(12) lv16(aad) pt -> ct||tag */
#define INS_SECRET_DECRYPT	0x2E	/* 80 2E h 00 Lc iv(12) lv16(aad) ct||tag -> pt */
#define INS_SECRET_DESTROY	0x4A	/* 80 4A h 00 (h = FF: all) */
#define INS_LOCK		0x74	/* 80 74 00 00: end of personalisation (SO) */

/* GET DATA P1 */
#define GD_CHIP_INFO		0x01	/* TLV below */
#define GD_CHIP_PUBKEY		0x02	/* note: chip authentication key, 65 bytes */
#define GD_CARD_CONFIG		0x03	/* idcard: plaintext configuration (ID-6) */

/* Chip info TLV tags (GET DATA 01) */
#define TAG_INFO_KIND		0xC0	/* 1 byte enum chip_kind */
#define TAG_INFO_SERIAL		0xC1	/* CHIP_SERIAL_LEN bytes */
#define TAG_INFO_LABEL		0xC2	/* 0..32 bytes */
#define TAG_INFO_STATE		0xC3	/* 2 bytes: INFO_F_* */
#define TAG_INFO_USER_TRIES	0xC4	/* 1 byte, tries left */
#define TAG_INFO_SO_TRIES	0xC5	/* 1 byte */
#define TAG_INFO_MAX_TRIES	0xC6	/* 1 byte */
#define TAG_INFO_FREE		0xC7	/* 4 bytes, free store bytes */
#define TAG_INFO_VERSION	0xC8	/* 2 bytes: major, minor */
#define TAG_INFO_LOGIN		0xC9	/* 1 byte: 0 none, 1 user, 2 SO */
#define TAG_INFO_MODE		0xCA	/* reader: 1 multi-card, 2 single-card */
#define TAG_INFO_STORE_GEN	0xCB	/* 4 bytes: store change counter */

#define INFO_F_INITIALIZED	0x0001	/* INIT TOKEN done (SO PIN set) */
#define INFO_F_USER_PIN_SET	0x0002	/* RESET RETRY (C_InitPIN) done */
#define INFO_F_LOCKED		0x0004	/* personalisation closed (INS_LOCK) */
#define INFO_F_USER_LOCKED	0x0008	/* user PIN blocked */
#define INFO_F_SO_LOCKED	0x0010
#define INFO_F_WRITTEN		0x0020	/* note: feature information written */

/* VERIFY / CHANGE PIN P2 */
#define PIN_USER		0x81
#define PIN_SO			0x82
#define PIN_MIN_LEN		4
#define PIN_MAX_LEN		32
#define PIN_MAX_TRIES		3	/* user PIN; SO PIN has 5 */
#define SO_PIN_MAX_TRIES	5
#define LABEL_MAX_LEN		32

/*
 * Objects.  An object is a class, flags, an opaque attribute blob that the
 * host owns (pkcs11/ stores its serialized template there) and, for keys,
 * chip-owned key material.  The private scalar never leaves the chip.
 */
#define OBJ_CLASS_DATA		0x00	/* CKO_DATA */
#define OBJ_CLASS_CERT		0x01	/* CKO_CERTIFICATE */
#define OBJ_CLASS_PUBKEY	0x02	/* CKO_PUBLIC_KEY (EC P-256) */
#define OBJ_CLASS_PRIVKEY	0x03	/* CKO_PRIVATE_KEY (EC P-256) */

#define OBJ_F_PRIVATE		0x01	/* READ needs user login */
#define OBJ_F_SIGN		0x02	/* private key may sign */
#define OBJ_F_DERIVE		0x04	/* private key may ECDH */
#define OBJ_F_CHIPKEY		0x08	/* note: the chip authentication key */
#define OBJ_F_READONLY		0x10	/* UPDATE/DELETE refused */

#define OBJ_MAX_ATTRS		12288	/* attribute blob: an 8 KB certificate fits */
#define OBJ_MAX_COUNT		1024
#define STORE_MAX_PAYLOAD	(256 * 1024)

/* LIST OBJECTS entry: id(2) class(1) flags(1) attrs_len(2); extended Le. */
#define OBJ_LIST_ENTRY_LEN	6

/* READ OBJECT response TLV tags */
#define TAG_OBJ_CLASS		0x80
#define TAG_OBJ_FLAGS		0x81
#define TAG_OBJ_ATTRS		0x82
#define TAG_OBJ_POINT		0x86	/* keys: public point, 65 bytes */
#define TAG_OBJ_ID		0x83	/* 2 bytes */

/* GEN KEYPAIR P1 */
#define GENKEY_NORMAL		0x00
#define GENKEY_CHIPKEY		0x01	/* note: the chip authentication key */
/* GEN KEYPAIR response: priv id(2) pub id(2) point(65) */

/* ---- banknote chip (BN-1..BN-8) ---- */
#define INS_INSTALL_ISSUER	0x70	/* 80 70 00 00 Lc point(65): SO, before LOCK */
#define INS_INSTALL_SERVER	0x72	/* 80 72 00 00 Lc point(65): SO, before LOCK */
#define INS_AUTHORIZE_WRITE	0x78	/* 80 78 00 00 Lc lv16(feature) sig(64) */
#define INS_WRITE_FEATURE	0x7A	/* 80 7A 00 00 Lc feature */
#define INS_READ_FEATURE	0x7C	/* 80 7C 00 00 Le -> TLV record */
#define INS_GET_SEALED		0x7E	/* 80 7E 00 00 Le -> sealed upload */
#define INS_INTERNAL_AUTH	0x88	/* 00 88 00 00 Lc challenge(16..64) Le -> sig */
#define INS_CHANGE_ISSUER	0x76	/* 80 76 P1 00 Lc point(65) [sig(64)]: locked, unwritten */
#define ISSUER_ADD		0x01	/* CHANGE ISSUER P1 */
#define ISSUER_RETIRE		0x02
#define GD_NOTE_ISSUERS		0x04	/* note GET DATA: n(1) || point(65) * n */

/*
 * Issuer keys (BN-4): the one limit for every holder of a set of them --
 * a chip's authorised keys (INSTALL ISSUER, CHANGE ISSUER: 6A84 past it),
 * provision --issuer-pub, rotate-issuer --add/--retire, the desk's verify
 * --issuer-pub and the server's note-issuers.  A desk or the server can
 * then trust every key a chip may carry, old and new during a rotation
 * (OP-6).  GET DATA issuers answers 1 + 8 * 65 bytes, chained with 61xx.
 */
#define NOTE_MAX_ISSUERS	8
#define NOTE_CHALLENGE_LEN	16
#define NOTE_MAX_FEATURE	1024

/* Feature record TLV (READ FEATURE, and the sealed plaintext) */
#define TAG_FEAT_SERIAL		0xD0	/* chip serial */
#define TAG_FEAT_INFO		0xD1	/* feature information as written */
#define TAG_FEAT_CHALLENGE	0xD2	/* the challenge the station signed */
#define TAG_FEAT_AUTH_SIG	0xD3	/* station signature r||s */
#define TAG_FEAT_ISSUER		0xD4	/* issuer key index (1 byte) */
#define TAG_SEAL_BLOB		0xD5	/* ml_seal() output */
#define TAG_SEAL_CHIP_SIG	0xD6	/* chip key signature over the blob */
#define TAG_SEAL_NONCE		0xD7	/* fresh per seal */

/* Domain-separation prefixes for what the chip signs or checks. */
#define NOTE_AUTH_DOMAIN	"mintline note write v1"	/* station auth */
#define NOTE_ISSUER_DOMAIN	"mintline note issuer v1"	/* key change */
#define NOTE_SEAL_DOMAIN	"mintline note seal v1"		/* chip over seal */
#define NOTE_PROVE_DOMAIN	"mintline note prove v1"	/* INTERNAL AUTH */

/* ---- reader secure chip (ID-6, ID-9, ID-11..ID-14) ---- */
#define INS_CACHE_MODE		0x90	/* 80 90 P1 00: P1 1 multi, 2 single (SO) */
#define INS_CACHE_PUT_CONFIG	0x92	/* 80 92 00 00 Lc config -> slot(1), new(1) */
#define INS_CACHE_PUT_DATA	0x94	/* 80 94 slot 00 Lc encrypted ID data */
#define INS_CACHE_GET		0x96	/* 80 96 00 00 Lc config Le -> TLV entry */
#define INS_CACHE_PUT_PLAIN	0x98	/* 80 98 slot 00 Lc plaintext (ID-11) */
#define INS_CACHE_GET_PLAIN	0x9A	/* 80 9A slot 00 Le -> plaintext */
#define INS_CACHE_CLEAR		0x9C	/* 80 9C P1 00: 0 all (ID-9), 1 plain+key (ID-12) */

#define CACHE_MODE_MULTI	1
#define CACHE_MODE_SINGLE	2
#define CACHE_MAX_ENTRIES	16
#define CACHE_MAX_CONFIG	256
#define CACHE_MAX_DATA		8192
#define TAG_CACHE_SLOT		0xE0
#define TAG_CACHE_CONFIG	0xE1
#define TAG_CACHE_DATA		0xE2
#define TAG_CACHE_HAS_PLAIN	0xE3

/* ---- ID-card stand-in (ID-6..ID-8) ---- */
#define INS_READ_BINARY		0xB0	/* 00 B0 offH offL Le: encrypted ID data */
#define INS_UPDATE_BINARY	0xD6	/* 00 D6 offH offL Lc data (before LOCK) */
#define INS_PUT_DATA		0xDA	/* 00 DA 00 03 Lc config (before LOCK) */

/* SAM (kind 4, ID-10): applet_sam.c */
#define INS_SAM_PUT_KEY		0xD8	/* 80 D8 00 00 Lc key(32) (before LOCK) */
#define INS_SAM_DECODE		0xD0	/* 80 D0 00 00 Lc lv8(config) data Le -> ID info */
#define IDCARD_MAX_DATA		8192

#endif
