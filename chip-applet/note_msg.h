/*
 * The exact bytes a banknote chip signs or checks, in one place for the
 * chip (applet_note.c) and every host that signs an authorisation or
 * verifies a chip signature (station, server, demo).  Each appends to w.
 * Signatures are ECDSA P-256 over SHA-256 of these bytes.  serial is the
 * chip serial, CHIP_SERIAL_LEN bytes, space padded; domain strings are
 * written without their NUL.
 */
#ifndef NOTE_MSG_H
#define NOTE_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "ml_ossl.h"
#include "ml_wr.h"
#include "chip_proto.h"

/* BN-3: "mintline note write v1" || challenge(16) || serial || feature */
ML_MUST_CHECK int note_msg_auth(struct ml_wr *w,
    const uint8_t challenge[static NOTE_CHALLENGE_LEN], const void *serial,
    const uint8_t *feature, size_t feature_len);

/* BN-4: "mintline note issuer v1" || challenge(16) || serial || op(1) ||
 * point(65): a current issuer key authorises adding or retiring one */
ML_MUST_CHECK int note_msg_issuer(struct ml_wr *w,
    const uint8_t challenge[static NOTE_CHALLENGE_LEN], const void *serial,
    uint8_t op, const uint8_t point[static ML_P256_PUB_LEN]);

/* BN-6: "mintline note seal v1" || serial || blob */
ML_MUST_CHECK int note_msg_seal(struct ml_wr *w, const void *serial,
    const uint8_t *blob, size_t blob_len);

/* BN-8: "mintline note prove v1" || serial || challenge || SHA-256(feature) */
ML_MUST_CHECK int note_msg_prove(struct ml_wr *w, const void *serial,
    const uint8_t *challenge, size_t challenge_len,
    const uint8_t feature_md[static ML_SHA256_LEN]);

#endif
