/*
 * test-adversarial-resubmit: read a note chip's sealed upload (GET SEALED,
 * what any station can read from any issued note) and submit it to
 * mintline-server over this station's own authenticated channel (BN-7:
 * "a sealed upload re-submitted by another station").  Test tool only.
 *
 *   test-adversarial-resubmit CHIP_IMAGE --server H:P --ca ROOT --cert PEM
 *       --key URI --module SO [--kind station|reader]
 *
 * Prints "status S reason R reg_id N note ID" (NOTE_ST_*, NOTE_R_*) and
 * exits 0 when the server answered, 1 otherwise.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chipcmd.h"
#include "chiplink.h"
#include "hs.h"
#include "ml_log.h"
#include "note_chip.h"
#include "note_proto.h"
#include "st.h"

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		ST_CONN_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	char dir[] = "/tmp/ml-resubmit-XXXXXX", path[600], spec[600];
	uint8_t sealed[NOTE_REQ_MAX], reply[NOTE_REPLY_MAX], type;
	struct st_conn conn;
	struct st_link *link = NULL;
	struct chiplink *l = NULL;
	struct chipcmd cc;
	struct note_reply rep;
	size_t n = 0, rn = 0;
	FILE *f;
	int c, r;

	st_conn_default(&conn);
	conn.kind = HS_KIND_STATION;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (st_conn_option(&conn, c, optarg) != 0) {
			fprintf(stderr, "bad option\n");
			return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: test-adversarial-resubmit CHIP_IMAGE "
		    "--server H:P --ca ROOT --cert PEM --key URI --module SO\n");
		return 2;
	}
	/* the chip on a private one-position line */
	if (mkdtemp(dir) == NULL) {
		return 1;
	}
	snprintf(path, sizeof(path), "%s/positions", dir);
	if ((f = fopen(path, "w")) == NULL) {
		return 1;
	}
	fputs("1\n", f);
	fclose(f);
	snprintf(spec, sizeof(spec), "inproc:%s", dir);
	if ((r = chiplink_open(spec, &l)) != 0 ||
	    (r = chiplink_inproc_feed(l, 0, argv[optind])) != 0 ||
	    (r = chipcmd_begin(&cc, l, 0)) != 0 ||
	    (r = note_chip_sealed(&cc, sealed, sizeof(sealed), &n)) != 0) {
		fprintf(stderr, "chip: %s\n", ml_errname(r));
		goto out;
	}
	if ((r = st_link_open(&conn, &link)) != 0) {
		fprintf(stderr, "channel: %s (alert %d)\n", ml_errname(r),
		    link != NULL ? link->alert : 0);
		goto out;
	}
	if ((r = hs_chan_call(link->chan, NOTE_REC_UPLOAD, sealed, n, &type,
	    reply, sizeof(reply), &rn)) != 0) {
		fprintf(stderr, "upload: %s\n", ml_errname(r));
		goto out;
	}
	if (type != NOTE_REC_REPLY ||
	    (r = note_reply_parse(reply, rn, &rep)) != 0) {
		fprintf(stderr, "reply: type 0x%02x %s\n", type, ml_errname(r));
		r = r != 0 ? r : ML_ERR_FORMAT;
		goto out;
	}
	printf("status %d reason %d reg_id %llu note %s\n", rep.status,
	    rep.reason, (unsigned long long)rep.reg_id, rep.note_id);
	r = 0;
out:
	st_link_close(link);
	if (l != NULL) {
		if (chiplink_inproc_feed(l, 0, NULL) != 0) {
			fprintf(stderr, "position not emptied\n");
		}
		chiplink_close(l);
	}
	unlink(path);
	rmdir(dir);
	return r == 0 ? 0 : 1;
}
