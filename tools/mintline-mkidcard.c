/*
 * mintline-mkidcard: manufacture a resident ID card stand-in (ID-6..ID-8)
 * and personalise it through APDUs, as a card factory would.
 *
 *	mintline-mkidcard --sam-key FILE [options] IMAGE
 *
 * The card gets a random (or --seed derived) 8-byte UID, a configuration
 * (UID, application data, ISO14443B at 106 kbit/s, 256-byte frames) and
 * realistic ID information (idcard_format.h) encrypted under the SAM test
 * key, so that the server's SAM emulator can open it.  The SAM key file is
 * read (32 bytes as 64 hex digits) or, if missing, created with a fresh random key
 * (mode 0600).  Exit status: 0 made, 1 failed, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chip.h"
#include "chip_proto.h"
#include "idcard_format.h"
#include "ml_err.h"
#include "ml_secret.h"
#include "ml_log.h"
#include "ml_ossl.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "tool_chip.h"

#define MK_CHUNK	240	/* UPDATE BINARY block size (short APDUs) */
#define MK_FINGER_LEN	1024	/* two 512-byte templates, as on real cards */
#define MK_PHOTO_W	32
#define MK_PHOTO_H	32

struct mk_opts {
	const char	*sam_key_path;
	const char	*image;
	bool		 have_seed;
	uint64_t	 seed;
	const char	*name;
	int		 sex;		/* 0: from the seed */
	const char	*nation;
	const char	*birth;
	const char	*region;
	const char	*address;
	const char	*authority;
	const char	*valid_from;
	const char	*valid_until;
	const char	*photo_path;
	bool		 no_finger;
	bool		 quiet;
};

/* splitmix64: a small deterministic generator for --seed. */
static uint64_t
mk_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned
mk_pick(uint64_t *s, unsigned n)
{
	return (unsigned)(mk_next(s) % n);
}

static const char *const mk_surnames[] = {
	"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周",
	"徐", "孙", "马", "朱", "胡", "郭", "何", "林", "罗", "高",
	"欧阳", "司马",
};

static const char *const mk_given_m[] = {
	"伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "明", "超",
	"建国", "志强", "海涛", "俊杰", "子轩", "浩然", "文博", "宇航",
};

static const char *const mk_given_f[] = {
	"芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀英", "桂英",
	"秀兰", "玉兰", "欣怡", "梓涵", "雨桐", "思琪", "佳怡", "晓燕",
};

/* 民族, weighted towards 汉 as the population is. */
static const char *const mk_nations[] = {
	"汉", "汉", "汉", "汉", "汉", "汉", "汉", "汉", "汉", "汉",
	"汉", "汉", "壮", "回", "满", "维吾尔", "苗", "彝", "土家", "藏",
	"蒙古", "朝鲜",
};

/* GB/T 2260 county-level codes with a street and the issuing bureau. */
static const struct mk_region {
	const char	*code;
	const char	*place;
	const char	*street;
	const char	*authority;
} mk_regions[] = {
	{ "110105", "北京市朝阳区", "建国路", "北京市公安局朝阳分局" },
	{ "110108", "北京市海淀区", "中关村大街", "北京市公安局海淀分局" },
	{ "310115", "上海市浦东新区", "世纪大道", "上海市公安局浦东分局" },
	{ "440305", "广东省深圳市南山区", "科技园南路", "深圳市公安局南山分局" },
	{ "330106", "浙江省杭州市西湖区", "文三路", "杭州市公安局西湖分局" },
	{ "510107", "四川省成都市武侯区", "人民南路四段", "成都市公安局武侯区分局" },
	{ "420106", "湖北省武汉市武昌区", "中北路", "武汉市公安局武昌分局" },
	{ "610113", "陕西省西安市雁塔区", "小寨东路", "西安市公安局雁塔分局" },
};

static void
mk_usage(FILE *f)
{
	fprintf(f,
	    "usage: mintline-mkidcard --sam-key FILE [options] IMAGE\n"
	    "\n"
	    "Manufacture an ID card stand-in at IMAGE (which must not exist),\n"
	    "write its configuration and its ID information encrypted under the\n"
	    "SAM key, and lock it.  FILE holds the 32-byte SAM master key; it is\n"
	    "created with a random key if missing.\n"
	    "\n"
	    "  -k, --sam-key FILE         SAM master key file (required)\n"
	    "  -s, --seed N               derive UID and unset fields from N\n"
	    "      --name NAME            full name (UTF-8)\n"
	    "      --sex male|female\n"
	    "      --nation NATION        民族, e.g. 汉\n"
	    "      --birth YYYYMMDD\n"
	    "      --region CODE          6-digit GB/T 2260 code of the ID number\n"
	    "      --address TEXT\n"
	    "      --authority TEXT       issuing authority\n"
	    "      --valid-from YYYYMMDD\n"
	    "      --valid-until YYYYMMDD|长期\n"
	    "      --photo FILE           photo bytes (default: a 32x32 PGM)\n"
	    "      --no-finger            leave out the fingerprint data\n"
	    "  -q, --quiet                print nothing on success\n"
	    "  -h, --help\n");
}

/*
 * Read the SAM key, or create it (O_EXCL, 0600, 64 hex digits) when the
 * file is missing.  The format and checks are common/ml_secret.c's.
 */
static int
mk_sam_key(const char *path, uint8_t ret_key[static IDC_SAM_KEY_LEN])
{
	int r;

	if ((r = ml_keyfile_create(path, IDC_SAM_KEY_LEN)) != 0 &&
	    r != ML_ERR_EXISTS) {
		return r;
	}
	return ml_keyfile_read(path, ret_key, IDC_SAM_KEY_LEN);
}

/* A grey-scale head and shoulders, 32x32, as binary PGM (1037 bytes). */
static void
mk_photo(uint64_t *s, struct idc_info *info)
{
	static const char hdr[] = "P5\n32 32\n255\n";
	uint8_t *px;
	int x, y, dx, dy;
	unsigned bg = 200 + mk_pick(s, 40), skin = 120 + mk_pick(s, 60);
	unsigned v;

	memcpy(info->photo, hdr, sizeof(hdr) - 1);
	px = info->photo + sizeof(hdr) - 1;
	for (y = 0; y < MK_PHOTO_H; y++) {
		for (x = 0; x < MK_PHOTO_W; x++) {
			dx = x - 16;
			dy = y - 12;
			if (dx * dx * 100 / 49 + dy * dy * 100 / 81 <= 100) {
				v = skin;			/* face */
			} else if (y > 22 && dx * dx < (y - 14) * (y - 14)) {
				v = 40;				/* shoulders */
			} else if (y < 10 && dx * dx <= 64) {
				v = 25;				/* hair */
			} else {
				v = bg;
			}
			v += mk_pick(s, 9);
			px[y * MK_PHOTO_W + x] = (uint8_t)(v > 255 ? 255 : v);
		}
	}
	info->photo_len = sizeof(hdr) - 1 + MK_PHOTO_W * MK_PHOTO_H;
}

static int
mk_read_photo(const char *path, struct idc_info *info)
{
	FILE *f;
	size_t n;
	int r = ML_ERR_INTERNAL;

	if ((f = fopen(path, "rb")) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "photo %s", path);
		goto out;
	}
	n = fread(info->photo, 1, IDC_PHOTO_MAX, f);
	if (ferror(f) || n == 0 || fgetc(f) != EOF) {
		fprintf(stderr, "mintline-mkidcard: %s: a photo is 1..%d "
		    "bytes\n", path, IDC_PHOTO_MAX);
		r = ML_ERR_TOO_LARGE;
	} else {
		info->photo_len = n;
		r = 0;
	}
	fclose(f);
out:
	return r;
}

static int
mk_copy(char *dst, size_t cap, const char *src)
{
	if (strlen(src) >= cap) {
		return ML_ERR_ARG;
	}
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

/* Years of validity by age at issue (the rule printed on the cards). */
static int
mk_validity_years(int age)
{
	if (age < 16) {
		return 5;
	}
	if (age <= 25) {
		return 10;
	}
	if (age <= 45) {
		return 20;
	}
	return 0;	/* 长期 */
}

/*
 * Fill info from the options, taking what is not given from the seed.
 */
static int
mk_fill(const struct mk_opts *o, uint64_t *s, struct idc_info *info)
{
	const struct mk_region *rg = &mk_regions[mk_pick(s, ML_NELEM(mk_regions))];
	char buf[256], id17[18];
	int by, bm, bd, fy, years, sex, i;
	unsigned seq;
	char chk;
	int r = ML_ERR_INTERNAL;

	memset(info, 0, sizeof(*info));
	sex = o->sex != 0 ? o->sex : 1 + (int)mk_pick(s, 2);
	info->sex = (uint8_t)sex;
	if (o->name != NULL) {
		ML_TRY(mk_copy(info->name, sizeof(info->name), o->name));
	} else {
		snprintf(info->name, sizeof(info->name), "%s%s",
		    mk_surnames[mk_pick(s, ML_NELEM(mk_surnames))],
		    sex == IDC_SEX_MALE ?
		    mk_given_m[mk_pick(s, ML_NELEM(mk_given_m))] :
		    mk_given_f[mk_pick(s, ML_NELEM(mk_given_f))]);
	}
	ML_TRY(mk_copy(info->nation, sizeof(info->nation), o->nation != NULL ?
	    o->nation : mk_nations[mk_pick(s, ML_NELEM(mk_nations))]));
	if (o->birth != NULL) {
		ML_TRY(mk_copy(info->birth, sizeof(info->birth), o->birth));
		ML_ENSURE(sscanf(info->birth, "%4d%2d%2d", &by, &bm, &bd) == 3,
		    ML_ERR_ARG);
	} else {
		by = 1950 + (int)mk_pick(s, 56);
		bm = 1 + (int)mk_pick(s, 12);
		bd = 1 + (int)mk_pick(s, 28);
		snprintf(info->birth, sizeof(info->birth), "%04d%02d%02d",
		    by, bm, bd);
	}
	if (o->address != NULL) {
		ML_TRY(mk_copy(info->address, sizeof(info->address),
		    o->address));
	} else {
		snprintf(info->address, sizeof(info->address), "%s%s%u号",
		    rg->place, rg->street, 1 + mk_pick(s, 300));
	}
	ML_TRY(mk_copy(info->authority, sizeof(info->authority),
	    o->authority != NULL ? o->authority : rg->authority));

	/* GB 11643: region(6) birth(8) sequence(3, odd = male) check(1) */
	seq = mk_pick(s, 500) * 2 + (sex == IDC_SEX_MALE ? 1 : 0);
	snprintf(id17, sizeof(id17), "%.6s%.8s%03u",
	    o->region != NULL ? o->region : rg->code, info->birth, seq);
	ML_ENSURE(strlen(id17) == 17 && (chk = idc_idnum_check_char(id17)) != 0,
	    ML_ERR_ARG);
	snprintf(info->idnum, sizeof(info->idnum), "%s%c", id17, chk);

	if (o->valid_from != NULL) {
		ML_TRY(mk_copy(info->valid_from, sizeof(info->valid_from),
		    o->valid_from));
		ML_ENSURE(sscanf(info->valid_from, "%4d", &fy) == 1, ML_ERR_ARG);
	} else {
		fy = 2016 + (int)mk_pick(s, 9);
		if (fy < by + 1) {
			fy = by + 1;
		}
		ML_ENSURE(fy <= 9979, ML_ERR_ARG);
		snprintf(buf, sizeof(buf), "%04d%02d%02d", fy,
		    1 + (int)mk_pick(s, 12), 1 + (int)mk_pick(s, 28));
		ML_TRY(mk_copy(info->valid_from, sizeof(info->valid_from),
		    buf));
	}
	if (o->valid_until != NULL) {
		ML_TRY(mk_copy(info->valid_until, sizeof(info->valid_until),
		    o->valid_until));
	} else if ((years = mk_validity_years(fy - by)) == 0) {
		ML_TRY(mk_copy(info->valid_until, sizeof(info->valid_until),
		    IDC_LONG_TERM));
	} else {
		snprintf(buf, sizeof(buf), "%04d%.4s", fy + years,
		    info->valid_from + 4);
		ML_TRY(mk_copy(info->valid_until, sizeof(info->valid_until),
		    buf));
	}

	if (o->photo_path != NULL) {
		ML_TRY(mk_read_photo(o->photo_path, info));
	} else {
		mk_photo(s, info);
	}
	if (!o->no_finger) {
		for (i = 0; i < MK_FINGER_LEN; i++) {
			info->finger[i] = (uint8_t)mk_next(s);
		}
		info->finger_len = MK_FINGER_LEN;
	}
	r = 0;
out:
	return r;
}

/*
 * Personalise: SELECT (tool_chip_open), PUT DATA (configuration), UPDATE
 * BINARY in blocks, LOCK.
 */
static int
mk_personalise(struct tool_chip *tc, const uint8_t *cfg, size_t cfg_len,
    const uint8_t *data, size_t data_len)
{
	size_t off, n;
	int r = ML_ERR_INTERNAL;

	ML_TRY(tool_chip_cmd(tc, CLA_ISO, INS_PUT_DATA, 0x00, GD_CARD_CONFIG,
	    cfg, cfg_len));
	for (off = 0; off < data_len; off += n) {
		n = data_len - off < MK_CHUNK ? data_len - off : MK_CHUNK;
		ML_TRY(tool_chip_cmd(tc, CLA_ISO, INS_UPDATE_BINARY,
		    (uint8_t)(off >> 8), (uint8_t)off, data + off, n));
	}
	ML_TRY(tool_chip_cmd(tc, CLA_PROP, INS_LOCK, 0, 0, NULL, 0));
	r = 0;
out:
	return r;
}

static int
mk_run(const struct mk_opts *o)
{
	struct idc_config cfg;
	struct idc_info *info = NULL;
	struct ml_wr cw = ml_wr_dyn(IDC_CONFIG_MAX);
	struct ml_wr dw = ml_wr_dyn(IDCARD_MAX_DATA);
	struct tool_chip tc = { 0 };
	uint8_t sam[IDC_SAM_KEY_LEN];
	char serial[2 * IDC_SERIAL_LEN + 1];
	char buf[4096];
	uint64_t s = o->seed;
	bool made = false;
	size_t i;
	int r = ML_ERR_INTERNAL;

	ML_TRY(mk_sam_key(o->sam_key_path, sam));
	if (!o->have_seed) {
		ML_TRY(ml_rand(&s, sizeof(s)));
	}
	ML_ENSURE((info = calloc(1, sizeof(*info))) != NULL, ML_ERR_NOMEM);

	memset(&cfg, 0, sizeof(cfg));
	for (i = 0; i < IDC_SERIAL_LEN; i++) {
		cfg.serial[i] = (uint8_t)mk_next(&s);
		snprintf(serial + 2 * i, 3, "%02X", cfg.serial[i]);
	}
	/* ATQB application data: AFI 00, CRC_B(AID) 2 bytes, 1 application */
	cfg.appdata[0] = 0x00;
	cfg.appdata[1] = (uint8_t)mk_next(&s);
	cfg.appdata[2] = (uint8_t)mk_next(&s);
	cfg.appdata[3] = 0x01;
	cfg.appdata_len = 4;
	memcpy(cfg.proto, "ISO14443B", sizeof("ISO14443B"));
	cfg.bitrate_kbps = 106;
	cfg.max_frame = 256;
	ML_TRY(idc_config_encode(&cfg, &cw));

	if ((r = mk_fill(o, &s, info)) != 0) {
		fprintf(stderr, "mintline-mkidcard: a field is malformed or "
		    "too long\n");
		goto out;
	}
	if ((r = idc_data_seal(sam, cfg.serial, info, &dw)) != 0) {
		fprintf(stderr, "mintline-mkidcard: ID information rejected: "
		    "%s (check dates, ID number and UTF-8 text)\n",
		    ml_errmsg(r));
		goto out;
	}
	if ((r = chip_manufacture(o->image, CHIP_KIND_IDCARD, serial)) != 0) {
		fprintf(stderr, "mintline-mkidcard: %s: %s\n", o->image,
		    ml_errmsg(r));
		goto out;
	}
	made = true;
	ML_TRY(tool_chip_open(&tc, o->image));
	ML_TRY(mk_personalise(&tc, cw.p, cw.len, dw.p, dw.len));
	if (!o->quiet) {
		printf("%s serial=%s id=%s name=%s data=%zu\n", o->image,
		    serial, info->idnum, info->name, dw.len);
	}
	r = 0;
out:
	tool_chip_close(&tc);
	if (r != 0 && made) {
		/* a half-personalised card is no card: take it away */
		snprintf(buf, sizeof(buf), "%s.key", o->image);
		(void)unlink(o->image);
		(void)unlink(buf);
	}
	ml_wipe(sam, sizeof(sam));
	ml_freezero(info, sizeof(*info));
	ml_wr_free(&cw);
	ml_wr_free(&dw);
	return r;
}

int
main(int argc, char **argv)
{
	enum {
		OPT_NAME = 256, OPT_SEX, OPT_NATION, OPT_BIRTH, OPT_REGION,
		OPT_ADDRESS, OPT_AUTHORITY, OPT_FROM, OPT_UNTIL, OPT_PHOTO,
		OPT_NO_FINGER,
	};
	static const struct option longopts[] = {
		{ "sam-key",	 required_argument, NULL, 'k' },
		{ "seed",	 required_argument, NULL, 's' },
		{ "name",	 required_argument, NULL, OPT_NAME },
		{ "sex",	 required_argument, NULL, OPT_SEX },
		{ "nation",	 required_argument, NULL, OPT_NATION },
		{ "birth",	 required_argument, NULL, OPT_BIRTH },
		{ "region",	 required_argument, NULL, OPT_REGION },
		{ "address",	 required_argument, NULL, OPT_ADDRESS },
		{ "authority",	 required_argument, NULL, OPT_AUTHORITY },
		{ "valid-from",	 required_argument, NULL, OPT_FROM },
		{ "valid-until", required_argument, NULL, OPT_UNTIL },
		{ "photo",	 required_argument, NULL, OPT_PHOTO },
		{ "no-finger",	 no_argument,	    NULL, OPT_NO_FINGER },
		{ "quiet",	 no_argument,	    NULL, 'q' },
		{ "help",	 no_argument,	    NULL, 'h' },
		{ NULL,		 0,		    NULL, 0 },
	};
	struct mk_opts o;
	char *end;
	int ch, r;

	memset(&o, 0, sizeof(o));
	ml_log_set_ident("mintline-mkidcard");
	while ((ch = getopt_long(argc, argv, "k:s:qh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			o.sam_key_path = optarg;
			break;
		case 's':
			errno = 0;
			o.seed = strtoull(optarg, &end, 0);
			if (errno != 0 || *end != '\0' || end == optarg) {
				fprintf(stderr, "mintline-mkidcard: bad seed\n");
				return 2;
			}
			o.have_seed = true;
			break;
		case OPT_NAME:
			o.name = optarg;
			break;
		case OPT_SEX:
			if (strcmp(optarg, "male") == 0) {
				o.sex = IDC_SEX_MALE;
			} else if (strcmp(optarg, "female") == 0) {
				o.sex = IDC_SEX_FEMALE;
			} else {
				fprintf(stderr, "mintline-mkidcard: --sex is "
				    "male or female\n");
				return 2;
			}
			break;
		case OPT_NATION:
			o.nation = optarg;
			break;
		case OPT_BIRTH:
			o.birth = optarg;
			break;
		case OPT_REGION:
			if (strlen(optarg) != 6 ||
			    strspn(optarg, "0123456789") != 6) {
				fprintf(stderr, "mintline-mkidcard: --region "
				    "is 6 digits\n");
				return 2;
			}
			o.region = optarg;
			break;
		case OPT_ADDRESS:
			o.address = optarg;
			break;
		case OPT_AUTHORITY:
			o.authority = optarg;
			break;
		case OPT_FROM:
			o.valid_from = optarg;
			break;
		case OPT_UNTIL:
			o.valid_until = optarg;
			break;
		case OPT_PHOTO:
			o.photo_path = optarg;
			break;
		case OPT_NO_FINGER:
			o.no_finger = true;
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'h':
			mk_usage(stdout);
			return 0;
		default:
			mk_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1 || o.sam_key_path == NULL) {
		mk_usage(stderr);
		return 2;
	}
	o.image = argv[optind];
	if ((r = mk_run(&o)) != 0) {
		fprintf(stderr, "mintline-mkidcard: failed: %s\n",
		    ml_errmsg(r));
		return 1;
	}
	return 0;
}
