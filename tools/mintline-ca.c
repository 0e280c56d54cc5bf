/*
 * mintline-ca: the key-ceremony helper.  See man/mintline-ca.1.
 *
 *	mintline-ca init   --dir D [--cn NAME] [--days N]
 *	mintline-ca issue  --dir D --role reader|station|server [--serial S]
 *	                   (--pub FILE | --p11 URI [--module SO])
 *	                   --out CERT.pem [--days N] [--backdate-days N]
 *	mintline-ca revoke --dir D CERT.pem...
 *	mintline-ca crl    --dir D --out CRL.pem [--days N]
 *
 * The root key is a software P-256 key in D/root.key (mode 0600): this is
 * a test/ceremony CA; a production root lives offline or in an HSM.  The
 * public keys it certifies are generated elsewhere: the server key inside
 * SoftHSM2 (pkcs11-tool --keypairgen), reader keys inside reader secure
 * chips (our PKCS#11 module); --p11 reads the public key through libp11.
 * Certificate numbers come from D/serial, one per certificate, never
 * reused (NSS hides certificates sharing issuer and serial).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hs.h"
#include "hs_ca.h"
#include "key_p11.h"
#include "ml_log.h"
#include "ml_parse.h"

struct ca_opts {
	char	 dir[512];
	char	 cn[128];
	char	 role[16];
	char	 serial[HS_MAX_SERIAL + 1];
	char	 pub[512];
	char	 p11[1024];
	char	 module[512];
	char	 out[512];
	long	 days;
	long	 backdate_days;
};

static void
usage(FILE *f)
{
	fprintf(f,
"usage: mintline-ca init   --dir D [--cn NAME] [--days N]\n"
"       mintline-ca issue  --dir D --role reader|station|server [--serial S]\n"
"                          (--pub FILE | --p11 URI [--module SO])\n"
"                          --out CERT.pem [--days N] [--backdate-days N]\n"
"       mintline-ca revoke --dir D CERT.pem...\n"
"       mintline-ca crl    --dir D --out CRL.pem [--days N]\n");
}

static void
path(char *buf, size_t n, const char *dir, const char *name)
{
	snprintf(buf, n, "%s/%s", dir, name);
}

/* Take the next certificate number from D/serial (locked). */
static int
next_certno(const char *dir, uint64_t *ret)
{
	char p[600], buf[32];
	unsigned long long v = 0x1000;
	ssize_t k;
	int fd, r = ML_ERR_IO;

	path(p, sizeof(p), dir, "serial");
	if ((fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		return ml_errf_sys(ML_ERR_IO, "%s", p);
	}
	if (flock(fd, LOCK_EX) != 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s", p);
		goto out;
	}
	k = read(fd, buf, sizeof(buf) - 1);
	if (k > 0) {
		buf[k] = '\0';
		v = strtoull(buf, NULL, 16);
	}
	snprintf(buf, sizeof(buf), "%llX\n", v + 1);
	if (lseek(fd, 0, SEEK_SET) != 0 || ftruncate(fd, 0) != 0 ||
	    write(fd, buf, strlen(buf)) != (ssize_t)strlen(buf) ||
	    fsync(fd) != 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s", p);
		goto out;
	}
	*ret = v;
	r = 0;
out:
	close(fd);
	return r;
}

static int
load_ca(const char *dir, struct hs_ca **ret)
{
	char k[600], c[600];

	path(k, sizeof(k), dir, "root.key");
	path(c, sizeof(c), dir, "root.pem");
	return hs_ca_load(k, c, ret);
}

static int
cmd_init(const struct ca_opts *o)
{
	struct hs_ca *ca = NULL;
	char k[600], c[600];
	struct stat st;
	int r;

	path(k, sizeof(k), o->dir, "root.key");
	path(c, sizeof(c), o->dir, "root.pem");
	if (stat(k, &st) == 0) {
		fprintf(stderr, "mintline-ca: %s exists; refusing to replace "
		    "a root\n", k);
		return ML_ERR_EXISTS;
	}
	(void)mkdir(o->dir, 0700);
	if ((r = hs_ca_create(o->cn[0] ? o->cn : "mintline root",
	    o->days ? o->days : 3650, &ca)) != 0 ||
	    (r = hs_ca_save(ca, k, c)) != 0) {
		hs_ca_free(ca);
		return r;
	}
	hs_ca_free(ca);
	printf("root CA in %s (root.pem, root.key)\n", o->dir);
	return 0;
}

static int
cmd_issue(const struct ca_opts *o)
{
	struct hs_ca *ca = NULL;
	uint8_t pub[ML_P256_PUB_LEN], *der = NULL;
	size_t len = 0;
	uint64_t certno = 0;
	struct hs_ca_req req;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(o->role[0] && o->out[0] && (o->pub[0] || o->p11[0]),
	    ML_ERR_ARG);
	ML_ENSURE(strcmp(o->role, "server") == 0 || o->serial[0], ML_ERR_ARG);
	if (o->pub[0]) {
		ML_TRY(hs_ca_read_pub(o->pub, pub));
	} else {
		ML_TRY(key_p11_pub(o->module, o->p11, pub));
	}
	ML_TRY(load_ca(o->dir, &ca));
	ML_TRY(next_certno(o->dir, &certno));
	memset(&req, 0, sizeof(req));
	req.pub = pub;
	req.role = o->role;
	req.serial = o->serial[0] ? o->serial : NULL;
	req.certno = certno;
	req.backdate_s = o->backdate_days * 86400L + 60;
	req.valid_s = (o->days ? o->days : 365) * 86400L;
	ML_TRY(hs_ca_issue(ca, &req, &der, &len));
	ML_TRY(hs_ca_write_pem(der, len, false, o->out));
	printf("issued %s %s certno %llX -> %s\n", o->role,
	    o->serial[0] ? o->serial : "-", (unsigned long long)certno, o->out);
out:
	free(der);
	hs_ca_free(ca);
	return r;
}

static int
cmd_revoke(const struct ca_opts *o, int argc, char **argv)
{
	struct hs_chain ch;
	struct hs_certinfo ci;
	char p[600];
	FILE *f;
	int i, r = ML_ERR_INTERNAL;

	ML_ENSURE(argc > 0, ML_ERR_ARG);
	path(p, sizeof(p), o->dir, "revoked");
	if ((f = fopen(p, "ae")) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", p);
		goto out;
	}
	for (i = 0; i < argc; i++) {
		if ((r = hs_chain_load(argv[i], &ch)) != 0) {
			break;
		}
		r = hs_cert_facts(ch.blob[0].p, ch.blob[0].len, &ci);
		hs_chain_free(&ch);
		if (r != 0) {
			break;
		}
		fprintf(f, "%s\n", ci.certno);
		printf("revoked certno %s (%s); run \"mintline-ca crl\"\n",
		    ci.certno, ci.serial);
	}
	if (fclose(f) != 0 && r == 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s", p);
	}
out:
	return r;
}

static int
cmd_crl(const struct ca_opts *o)
{
	struct hs_ca *ca = NULL;
	uint64_t rev[4096];
	size_t n = 0;
	uint8_t *der = NULL;
	size_t len = 0;
	char p[600], line[64];
	FILE *f;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(o->out[0], ML_ERR_ARG);
	ML_TRY(load_ca(o->dir, &ca));
	path(p, sizeof(p), o->dir, "revoked");
	if ((f = fopen(p, "re")) != NULL) {
		while (n < ML_NELEM(rev) && fgets(line, sizeof(line), f) != NULL) {
			if (line[0] != '\n') {
				rev[n++] = strtoull(line, NULL, 16);
			}
		}
		fclose(f);
	}
	ML_TRY(hs_ca_crl(ca, rev, n, (o->days ? o->days : 30) * 86400L, &der,
	    &len));
	ML_TRY(hs_ca_write_pem(der, len, true, o->out));
	printf("CRL with %zu revoked -> %s\n", n, o->out);
out:
	free(der);
	hs_ca_free(ca);
	return r;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "cn", required_argument, NULL, 'n' },
		{ "role", required_argument, NULL, 'r' },
		{ "serial", required_argument, NULL, 's' },
		{ "pub", required_argument, NULL, 'p' },
		{ "p11", required_argument, NULL, 'k' },
		{ "module", required_argument, NULL, 'm' },
		{ "out", required_argument, NULL, 'o' },
		{ "days", required_argument, NULL, 'D' },
		{ "backdate-days", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ca_opts o;
	const char *cmd;
	int64_t v;
	int c, r;

	ml_log_set_ident("mintline-ca");
	memset(&o, 0, sizeof(o));
	if (argc < 2 || argv[1][0] == '-') {
		usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	cmd = argv[1];
	argc--;
	argv++;
#define S(f) snprintf(o.f, sizeof(o.f), "%s", optarg)
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'd': S(dir); break;
		case 'n': S(cn); break;
		case 'r': S(role); break;
		case 's': S(serial); break;
		case 'p': S(pub); break;
		case 'k': S(p11); break;
		case 'm': S(module); break;
		case 'o': S(out); break;
		case 'D':
			if (ml_parse_i64(optarg, "--days", 1, 36500, &v) != 0) {
				fprintf(stderr, "mintline-ca: %s\n",
				    ml_errmsg(ML_ERR_ARG));
				return 2;
			}
			o.days = (long)v;
			break;
		case 'B':
			if (ml_parse_i64(optarg, "--backdate-days", -36500,
			    36500, &v) != 0) {
				fprintf(stderr, "mintline-ca: %s\n",
				    ml_errmsg(ML_ERR_ARG));
				return 2;
			}
			o.backdate_days = (long)v;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
#undef S
	if (o.dir[0] == '\0') {
		usage(stderr);
		return 2;
	}
	if (strcmp(cmd, "init") == 0) {
		r = cmd_init(&o);
	} else if (strcmp(cmd, "issue") == 0) {
		r = cmd_issue(&o);
	} else if (strcmp(cmd, "revoke") == 0) {
		r = cmd_revoke(&o, argc - optind, argv + optind);
	} else if (strcmp(cmd, "crl") == 0) {
		r = cmd_crl(&o);
	} else {
		usage(stderr);
		return 2;
	}
	if (r == ML_ERR_ARG) {
		usage(stderr);
		return 2;
	}
	if (r != 0) {
		fprintf(stderr, "mintline-ca %s: %s\n", cmd, ml_errmsg(r));
		return 1;
	}
	return 0;
}
