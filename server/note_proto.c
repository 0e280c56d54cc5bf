/*
 * Issuance record helpers shared by the station and the server.
 */
#include "note_proto.h"

const char *
note_reason_str(int reason)
{
	switch (reason) {
#define NOTE_R_CASE(name, value, text) case value: return text;
	NOTE_REASONS(NOTE_R_CASE)
#undef NOTE_R_CASE
	default:
		return "unknown reason";
	}
}

const char *
note_reason_name(int reason)
{
	static const char *const names[] = {
		"ok", "malformed", "unknown_chip", "chip_sig", "tampered",
		"bad_feature", "unauthorized_writer", "dup_serial", "chip_used",
		"enrol_conflict", "unregistered", "feature_mismatch",
		"chip_mismatch", "internal", "serial_mismatch",
	};

	if (reason < 0 || (unsigned)reason >= sizeof(names) / sizeof(names[0])) {
		return "unknown";
	}
	return names[reason];
}
