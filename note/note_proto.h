/*
 * Issuance records between a station and mintline-server (BN-6, BN-7,
 * BN-8), carried as application records on the station's authenticated
 * channel (hs/hs_api.h, record types from HS_REC_APP upwards).  Every
 * request gets exactly one reply record (NOTE_REC_REPLY).  Bodies are TLV
 * (common/ml_tlv.h); unknown tags are ignored, missing ones are malformed.
 *
 * NOTE_REC_ENROL	chip enrolment, from provisioning: the chip public key
 *			read from the chip right after it generated it inside.
 *			 E0 chip serial (16)  E1 chip public key (65)
 * NOTE_REC_UPLOAD	a sealed upload (BN-6), the chip's GET SEALED answer
 *			forwarded verbatim:
 *			 D0 chip serial  D5 sealed blob  D6 chip signature
 * NOTE_REC_QUERY	verification desk, online (BN-8): what the desk read
 *			from a chip that has just proven its key:
 *			 D0 chip serial  D1 feature  E1 chip public key
 * NOTE_REC_CHECK	issuance pre-check (OP-3), sent before AUTHORIZE WRITE:
 *			can the server accept this note on this chip now?
 *			 E0 chip serial  E1 chip public key  EA note id
 *			 [D1 feature information to be written]
 *			OK (and the serial reserved for this chip for a while),
 *			or REJECT: unknown_chip, chip_mismatch (enrolled with
 *			another key), dup_serial (registered to another chip),
 *			reserved (another chip is being issued this serial),
 *			bad_feature (D1 malformed, not bound to the chip key,
 *			naming another note, or its keyed code not made by a
 *			feature key the server accepts).
 *
 * NOTE_REC_REPLY	E8 status (1)  E9 reason (1)  [EA note id]
 *			[EB registration id (8)]  [EC flags (1)]
 */
#ifndef NOTE_PROTO_H
#define NOTE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "hs_api.h"
#include "ml_err.h"

#define NOTE_REC_ENROL		(HS_REC_APP + 0x20)
#define NOTE_REC_UPLOAD		(HS_REC_APP + 0x21)
#define NOTE_REC_QUERY		(HS_REC_APP + 0x22)
#define NOTE_REC_CHECK		(HS_REC_APP + 0x23)
#define NOTE_REC_REPLY		(HS_REC_APP + 0x2F)

#define TAG_ENROL_SERIAL	0xE0
#define TAG_ENROL_PUB		0xE1
#define TAG_REPLY_STATUS	0xE8
#define TAG_REPLY_REASON	0xE9
#define TAG_REPLY_NOTE		0xEA
#define TAG_REPLY_REGID		0xEB
#define TAG_REPLY_FLAGS		0xEC

#define NOTE_REPLY_MAX		256
#define NOTE_REQ_MAX		4096

enum note_status {
	NOTE_ST_OK	= 0,	/* registered / enrolled / genuine */
	NOTE_ST_AGAIN	= 1,	/* the same request was already done: same answer */
	NOTE_ST_REJECT	= 2,	/* nothing registered; see the reason */
};

/* Reasons, with the text the station and the logs print. */
#define NOTE_REASONS(X)							\
	X(NOTE_R_NONE,		 0, "ok")					\
	X(NOTE_R_MALFORMED,	 1, "malformed request")			\
	X(NOTE_R_UNKNOWN_CHIP,	 2, "unknown chip (not enrolled)")		\
	X(NOTE_R_CHIP_SIG,	 3, "chip signature invalid")			\
	X(NOTE_R_TAMPERED,	 4, "sealed upload does not open (tampered or wrong key)") \
	X(NOTE_R_BAD_FEATURE,	 5, "feature information invalid")		\
	X(NOTE_R_UNAUTHORIZED,	 6, "writer not authorised (station signature)") \
	X(NOTE_R_DUP_SERIAL,	 7, "duplicate serial (registered to another chip)") \
	X(NOTE_R_CHIP_USED,	 8, "chip already carries another note")	\
	X(NOTE_R_ENROL_CONFLICT, 9, "chip serial enrolled with another key")	\
	X(NOTE_R_UNREGISTERED,	10, "unregistered serial")			\
	X(NOTE_R_FEATURE_MISMATCH, 11, "feature mismatch")			\
	X(NOTE_R_CHIP_MISMATCH,	12, "chip key mismatch or clone")		\
	X(NOTE_R_INTERNAL,	13, "server error")				\
	X(NOTE_R_SERIAL_ID,	14, "serial mismatch between chip and record") \
	X(NOTE_R_RESERVED,	15, "serial being issued on another chip")

enum note_reason {
#define NOTE_R_ENUM(name, value, text) name = (value),
	NOTE_REASONS(NOTE_R_ENUM)
#undef NOTE_R_ENUM
	NOTE_R_COUNT
};

/* Reply flags */
#define NOTE_F_TWO_CHIPS	0x01	/* this serial was presented by two chips */

const char	*note_reason_str(int reason);
/* Short machine name ("dup_serial") for JSON and counters. */
const char	*note_reason_name(int reason);

/* A reply body (NOTE_REC_REPLY) as the station reads it. */
#define NOTE_REPLY_ID_MAX	32
struct note_reply {
	int		 status;
	int		 reason;
	unsigned	 flags;
	uint64_t	 reg_id;
	char		 note_id[NOTE_REPLY_ID_MAX + 1];
};

/*
 * Parse a reply body (untrusted): status, reason, flags, registration id,
 * note id.  0 and *ret filled, or ML_ERR_* (*ret untouched).
 */
ML_MUST_CHECK int note_reply_parse(const uint8_t *p, size_t n,
    struct note_reply *ret);

#endif
