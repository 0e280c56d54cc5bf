/*
 * The station's uplink to the registration server for the issuance
 * commands: the authenticated hs channel (st_link_open(), handshake A or
 * B with the station's certificate, kind "station").
 */
#ifndef ST_NOTE_CHAN_H
#define ST_NOTE_CHAN_H

#include "note_uplink.h"
#include "st.h"

/* Open one connection (a handshake); one per worker thread. */
ML_MUST_CHECK int note_chan_open(const struct st_conn *conn,
    struct note_uplink **ret);

#endif
