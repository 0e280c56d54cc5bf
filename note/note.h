/*
 * note/: the banknote domain shared by mintline-station and
 * mintline-server (BN-2, BN-6, BN-7, BN-8).  Include this header, or the
 * one part a file needs:
 *
 *	feature.h	the note name (prefix, serial) and the feature record
 *			written to the note's chip: derivation, parsing, checks,
 *			the feature key file (BN-2)
 *	note_proto.h	the issuance records between station and server
 *			(enrolment, sealed upload, desk query, reply), their
 *			reasons and the reply decoder (BN-6..BN-8)
 *	note_uplink.h	the transport a station sends those records over: its
 *			hs channel, or a handler in the same process
 *
 * The bytes the note chip signs (the station authorisation, the seal) are
 * chip-applet/note_msg.h: the chip, the station and the server share that
 * one definition.  Station-only code (batch files, chip line, journal)
 * is station/; the registration server (reg_note, the registry) server/.
 */
#ifndef NOTE_H
#define NOTE_H

#include "feature.h"
#include "note_proto.h"
#include "note_uplink.h"

#endif
