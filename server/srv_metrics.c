/*
 * The metrics endpoint's content: Prometheus text exposition format 0.0.4
 * (HELP/TYPE lines, counters end in _total, histograms as cumulative
 * _bucket{le=..} plus _sum and _count).  Served by the I/O thread on its
 * own loopback listener (srv_net.c); every value is an atomic counter
 * that the worker threads bump, so rendering takes no lock.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "idpkt.h"
#include "note_proto.h"
#include "reg_note.h"
#include "srv.h"

static const uint64_t hist_le_us[SRV_HIST_BUCKETS] = {
	1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
	1000000, 2000000, 5000000,
};

void
srv_hist_observe(struct srv_hist *h, uint64_t us)
{
	size_t i;

	for (i = 0; i < SRV_HIST_BUCKETS && us > hist_le_us[i]; i++) {
	}
	atomic_fetch_add(&h->bucket[i], 1);
	atomic_fetch_add(&h->sum_us, us);
	atomic_fetch_add(&h->count, 1);
}

void
srv_metrics_record(struct srv *s, uint8_t type, int r, uint8_t rtype,
    const uint8_t *reply, size_t reply_len, uint64_t us)
{
	struct srv_metrics *m = &s->m;
	struct note_reply rep;

	atomic_fetch_add(&m->by_type[type], 1);
	srv_hist_observe(&m->rec_latency, us);
	if (r != 0) {
		atomic_fetch_add(&m->handler_errors[type], 1);
		return;
	}
	if ((type == NOTE_REC_UPLOAD || type == NOTE_REC_ENROL) &&
	    rtype == NOTE_REC_REPLY &&
	    note_reply_parse(reply, reply_len, &rep) == 0 &&
	    rep.status >= 0 && rep.status <= 2) {
		atomic_fetch_add(type == NOTE_REC_UPLOAD ?
		    &m->note_status[rep.status] :
		    &m->note_enrol_status[rep.status], 1);
	}
	/* ID read: the RESULT record ends an upload (idpkt.h) */
	if (rtype == HS_REC_APP + 0x35 && reply_len >= 12) {
		if (reply[8] == 0 && reply[9] == 0 && reply[10] == 0 &&
		    reply[11] == 0) {
			atomic_fetch_add(&m->id_reads_ok, 1);
		} else {
			atomic_fetch_add(&m->id_reads_failed, 1);
		}
	}
}

static int	put(struct ml_wr *w, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

static int
put(struct ml_wr *w, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		return ML_ERR_TOO_LARGE;
	}
	return ml_wr_bytes(w, line, (size_t)n);
}

static int
head(struct ml_wr *w, const char *name, const char *type, const char *help)
{
	return put(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int
hist(struct ml_wr *w, const char *name, const char *help,
    const struct srv_hist *h)
{
	unsigned long long cum = 0;
	size_t i;
	int r = ML_ERR_INTERNAL;

	ML_TRY(head(w, name, "histogram", help));
	for (i = 0; i < SRV_HIST_BUCKETS; i++) {
		cum += atomic_load(&h->bucket[i]);
		ML_TRY(put(w, "%s_bucket{le=\"%g\"} %llu\n", name,
		    (double)hist_le_us[i] / 1e6, cum));
	}
	cum += atomic_load(&h->bucket[SRV_HIST_BUCKETS]);
	ML_TRY(put(w, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum));
	ML_TRY(put(w, "%s_sum %.6f\n", name,
	    (double)atomic_load(&h->sum_us) / 1e6));
	ML_TRY(put(w, "%s_count %llu\n", name,
	    (unsigned long long)atomic_load(&h->count)));
	r = 0;
out:
	return r;
}

#define C(x)	((unsigned long long)atomic_load(&(x)))

int
srv_metrics_render(struct srv *s, struct ml_wr *w)
{
	struct srv_metrics *m = &s->m;
	static const char *const st[3] = { "ok", "again", "reject" };
	int i, r = ML_ERR_INTERNAL;

	ML_TRY(head(w, "mintline_connections_accepted_total", "counter",
	    "TCP connections accepted"));
	ML_TRY(put(w, "mintline_connections_accepted_total %llu\n",
	    C(m->accepted)));
	ML_TRY(head(w, "mintline_connections_refused_total", "counter",
	    "connections refused at accept, by limit"));
	ML_TRY(put(w, "mintline_connections_refused_total{reason=\"max_conns\"} "
	    "%llu\n", C(m->refused_busy)));
	ML_TRY(put(w, "mintline_connections_refused_total{reason=\"max_unauth\"} "
	    "%llu\n", C(m->refused_unauth)));
	ML_TRY(put(w, "mintline_connections_refused_total{reason=\"per_addr\"} "
	    "%llu\n", C(m->refused_per_addr)));
	ML_TRY(head(w, "mintline_connections_open", "gauge",
	    "connections open now"));
	ML_TRY(put(w, "mintline_connections_open %d\n",
	    atomic_load(&m->conns_open)));
	ML_TRY(head(w, "mintline_connections_unauthenticated", "gauge",
	    "connections whose handshake has not finished"));
	ML_TRY(put(w, "mintline_connections_unauthenticated %d\n",
	    atomic_load(&m->conns_unauth)));

	ML_TRY(head(w, "mintline_handshakes_total", "counter",
	    "handshakes completed, by flow"));
	ML_TRY(put(w, "mintline_handshakes_total{flow=\"A\"} %llu\n",
	    C(m->hs_ok[HS_FLOW_A])));
	ML_TRY(put(w, "mintline_handshakes_total{flow=\"B\"} %llu\n",
	    C(m->hs_ok[HS_FLOW_B])));
	ML_TRY(head(w, "mintline_handshake_rejections_total", "counter",
	    "handshakes refused, by alert"));
	for (i = 1; i < HS_ALERT_MAX; i++) {
		/* BUSY is sent at accept: the sum of the refused_total */
		ML_TRY(put(w, "mintline_handshake_rejections_total{reason=\"%s\"}"
		    " %llu\n", hs_alert_name(i), i == HS_ALERT_BUSY ?
		    C(m->refused_busy) + C(m->refused_unauth) +
		    C(m->refused_per_addr) : C(m->rejected[i])));
	}
	ML_TRY(hist(w, "mintline_handshake_duration_seconds",
	    "wall time from accept to an established channel", &m->hs_latency));

	ML_TRY(head(w, "mintline_records_total", "counter",
	    "channel records received, by type"));
	for (i = 0; i < 256; i++) {
		if (C(m->by_type[i]) != 0) {
			ML_TRY(put(w, "mintline_records_total{type=\"0x%02x\"} "
			    "%llu\n", i, C(m->by_type[i])));
		}
	}
	ML_TRY(head(w, "mintline_record_errors_total", "counter",
	    "records refused: bad record layer, or a handler error"));
	ML_TRY(put(w, "mintline_record_errors_total{kind=\"record\"} %llu\n",
	    C(m->record_errors)));
	ML_TRY(put(w, "mintline_record_errors_total{kind=\"oversize\"} "
	    "%llu\n", C(m->frames_oversize)));
	for (i = 0; i < 256; i++) {
		if (C(m->handler_errors[i]) != 0) {
			ML_TRY(put(w, "mintline_record_errors_total{kind=\"handler\","
			    "type=\"0x%02x\"} %llu\n", i,
			    C(m->handler_errors[i])));
		}
	}
	ML_TRY(hist(w, "mintline_record_duration_seconds",
	    "worker time for one record (handler included)", &m->rec_latency));

	ML_TRY(head(w, "mintline_note_uploads_total", "counter",
	    "sealed note uploads (BN-7) answered, by status"));
	ML_TRY(head(w, "mintline_note_registrations_total", "counter",
	    "notes registered (new)"));
	ML_TRY(put(w, "mintline_note_registrations_total %llu\n",
	    C(m->note_status[0])));
	for (i = 0; i < 3; i++) {
		ML_TRY(put(w, "mintline_note_uploads_total{status=\"%s\"} %llu\n",
		    st[i], C(m->note_status[i])));
	}
	ML_TRY(head(w, "mintline_note_enrolments_total", "counter",
	    "chip enrolments answered, by status"));
	for (i = 0; i < 3; i++) {
		ML_TRY(put(w, "mintline_note_enrolments_total{status=\"%s\"} "
		    "%llu\n", st[i], C(m->note_enrol_status[i])));
	}
	ML_TRY(head(w, "mintline_id_reads_total", "counter",
	    "ID-card reads finished (RESULT sent), by outcome"));
	ML_TRY(put(w, "mintline_id_reads_total{result=\"ok\"} %llu\n",
	    C(m->id_reads_ok)));
	ML_TRY(put(w, "mintline_id_reads_total{result=\"failed\"} %llu\n",
	    C(m->id_reads_failed)));
	ML_TRY(head(w, "mintline_risk_events_dropped_total", "counter",
	    "risk records dropped because the writer queue was full"));
	ML_TRY(put(w, "mintline_risk_events_dropped_total %llu\n",
	    (unsigned long long)(s->events != NULL ?
	    srv_events_dropped(s->events) : 0)));
	ML_TRY(head(w, "mintline_monitor_up", "gauge",
	    "1 while the HSM monitor process answers"));
	ML_TRY(put(w, "mintline_monitor_up %d\n",
	    s->mon != NULL && mon_alive(s->mon) ? 1 : 0));
	r = 0;
out:
	return r;
}
