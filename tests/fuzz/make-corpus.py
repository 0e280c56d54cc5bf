#!/usr/bin/env python3
"""Write the seed corpora in tests/fuzz/corpus/<target>/ (binary files).

The seeds are small valid inputs, written from the formats in
chip-applet/chip_proto.h, chip-applet/chip_state.c and the input layout at
the top of tests/fuzz/fuzz_chip.c.  Run again after a format change:

    python3 tests/fuzz/make-corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def tlv(tag, value):
    t = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    n = len(value)
    if n < 0x80:
        ln = bytes([n])
    elif n <= 0xFF:
        ln = bytes([0x81, n])
    elif n <= 0xFFFF:
        ln = bytes([0x82]) + n.to_bytes(2, "big")
    else:
        ln = bytes([0x83]) + n.to_bytes(3, "big")
    return t + ln + value


def apdu(cla, ins, p1, p2, data=b"", ne=0):
    """Short form where it fits, else extended (like apdu_build)."""
    ext = len(data) > 255 or ne > 256
    out = bytes([cla, ins, p1, p2])
    if data:
        out += (b"\x00" + len(data).to_bytes(2, "big")) if ext else bytes([len(data)])
        out += data
    if ne:
        if ext:
            out += (b"" if data else b"\x00") + (ne & 0xFFFF).to_bytes(2, "big")
        else:
            out += bytes([ne & 0xFF])
    return out


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


AID = bytes([0xA0, 0x00, 0x00, 0x08, 0x88, 0x4D, 0x4C, 0x01])
SO_PIN = b"87654321"
# The P-256 base point: a valid public key for INSTALL ISSUER/SERVER and ECDH.
P256_G = bytes.fromhex(
    "04"
    "6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296"
    "4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5")
USER_PIN = b"1234"


def lv8(b):
    return bytes([len(b)]) + b


def lv16(b):
    return len(b).to_bytes(2, "big") + b


# ---- apdu ----------------------------------------------------------
write("apdu", "case1", apdu(0x00, 0xA4, 0x04, 0x00))
write("apdu", "case2s", apdu(0x00, 0xB0, 0x00, 0x00, ne=256))
write("apdu", "case2e", bytes([0x00, 0xB0, 0, 0, 0x00, 0x01, 0x00]))
write("apdu", "case3s", apdu(0x00, 0xA4, 0x04, 0x0C, AID + b"\x01"))
write("apdu", "case4s", apdu(0x00, 0xA4, 0x04, 0x00, AID + b"\x01", 256))
write("apdu", "case3e", apdu(0x80, 0x64, 0, 0, b"\x00\x00" + bytes(300)))
write("apdu", "case4e", apdu(0x80, 0x2A, 0x9E, 0x9A, b"\x00\x01" + bytes(32), 65536))
write("apdu", "case4e-small", bytes([0x80, 0x62, 0x00, 0x01, 0x00, 0x00, 0x01, 0xAA, 0x00, 0x00]))

# ---- tlv -------------------------------------------------------------
write("tlv", "fci", tlv(0x6F, tlv(0x84, AID + b"\x01") + tlv(0xC0, b"\x01") +
                    tlv(0xC1, b"SERIAL0001      ")))
write("tlv", "info", tlv(0xC0, b"\x01") + tlv(0xC2, b"label") +
      tlv(0xC3, b"\x00\x03") + tlv(0xC7, b"\x00\x03\xf0\x00"))
write("tlv", "long-forms", tlv(0x5F20, bytes(200)) + tlv(0x9F8101, bytes(300)) +
      tlv(0x41, b""))
write("tlv", "nested", tlv(0x7F21, tlv(0xA5, tlv(0x88, b"x" * 130)) + tlv(0x41, b"y")))
write("tlv", "obj", tlv(0x83, b"\x00\x01") + tlv(0x80, b"\x03") + tlv(0x81, b"\x07") +
      tlv(0x82, b"attrs") + tlv(0x86, b"\x04" + bytes(64)))

# ---- store: chip state payloads ------------------------------------
def pin_rec(set_, tries, max_):
    return bytes([1 if set_ else 0]) + bytes(range(16)) + bytes(range(32, 64)) + \
        bytes([tries, max_])


def state(kind, serial, extra=b"", flags=0x0001, objs=()):
    s = tlv(0x41, b"\x01") + tlv(0x42, bytes([kind])) + tlv(0x43, serial.ljust(16)) + \
        tlv(0x44, b"label") + tlv(0x45, flags.to_bytes(2, "big")) + \
        tlv(0x46, pin_rec(True, 3, 3)) + tlv(0x47, pin_rec(True, 5, 5)) + \
        tlv(0x48, b"\x00\x05")
    for o in objs:
        s += tlv(0x69, o)
    return s + extra


def obj(oid, cls, flags, attrs, point=False, priv=False):
    v = tlv(0x50, oid.to_bytes(2, "big")) + tlv(0x51, bytes([cls])) + \
        tlv(0x52, bytes([flags])) + tlv(0x53, attrs)
    if point:
        v += tlv(0x54, b"\x04" + bytes(range(64)))
    if priv:
        v += tlv(0x55, bytes(range(100, 132)))
    return v


write("store", "blank-reader", state(1, b"READER01", tlv(0x56, b"\x01"), flags=0))
write("store", "reader-objs", state(1, b"READER02", tlv(0x56, b"\x02"), objs=(
    obj(1, 3, 0x07, b"prv", point=True, priv=True),
    obj(2, 2, 0x00, b"pub", point=True),
    obj(3, 0, 0x01, b"data" * 40))))
write("store", "note-written", state(2, b"NOTE0001",
      tlv(0x4A, b"\x04" + bytes(64)) + tlv(0x4B, b"\x04" + bytes(range(64))) +
      tlv(0x4C, b"feature information") + tlv(0x4D, bytes(16)) + tlv(0x4E, bytes(64)) +
      tlv(0x4F, b"\x00"), flags=0x0025,
      objs=(obj(1, 3, 0x0B, b"", point=True, priv=True), obj(2, 2, 0x08, b"", point=True))))
write("store", "idcard", state(3, b"IDC00001",
      tlv(0x57, tlv(0x80, b"IDC00001") + tlv(0x81, b"app")) + tlv(0x58, bytes(300)),
      flags=0x0005))

# ---- chip: flags byte, then u16be-length-prefixed APDUs -------------
def seq(flags, *apdus):
    out = bytes([flags])
    for a in apdus:
        if isinstance(a, int):          # a macro (FFFC..FFFF) without data
            out += a.to_bytes(2, "big")
        else:
            out += len(a).to_bytes(2, "big") + a
    return out


SEL = 0x40
LOGIN = 0x20
SMALL = 0x80


def select(kind):
    return apdu(0x00, 0xA4, 0x04, 0x0C, AID + bytes([kind]))


def chip(i):
    return i            # 0/1 reader blank/perso, 2/3 note, 4/5 idcard, 6/7 sam


write("chip", "reader-blank-perso", seq(chip(0),
    select(1),
    apdu(0x00, 0xCA, 0x01, 0x00, ne=256),
    apdu(0x80, 0x50, 0, 0, lv8(SO_PIN) + lv8(b"token")),
    apdu(0x00, 0x20, 0x00, 0x82, SO_PIN),
    apdu(0x00, 0x2C, 0x00, 0x81, USER_PIN),
    apdu(0x00, 0x20, 0x00, 0x81, USER_PIN),
    apdu(0x80, 0x64, 0, 0, b"\x00\x01" + b"attrs"),
    apdu(0x80, 0x60, 0, 0, ne=256),
    apdu(0x80, 0x62, 0x00, 0x01, ne=256),
    apdu(0x80, 0x66, 0x00, 0x01, b"new"),
    apdu(0x80, 0x68, 0x00, 0x01)))
write("chip", "reader-keys", seq(chip(1) | SEL | LOGIN,
    apdu(0x80, 0x62, 0x00, 0x01, ne=256),
    apdu(0x80, 0x62, 0x00, 0x02, ne=256),
    apdu(0x80, 0x46, 0, 0, lv16(b"p") + lv16(b"q"), 256),
    apdu(0x80, 0x2A, 0x9E, 0x9A, b"\x00\x01" + bytes(32), 256),
    apdu(0x80, 0x86, 0x00, 0x01, P256_G, 256),
    apdu(0x80, 0x48, 0, 0, ne=256),
    apdu(0x80, 0x2C, 0x00, 0x00, bytes(12) + lv16(b"aad") + b"plaintext", 256),
    apdu(0x80, 0x2E, 0x00, 0x00, bytes(12) + lv16(b"aad") + bytes(25), 256),
    apdu(0x80, 0x4A, 0xFF, 0x00),
    apdu(0x80, 0x60, 0, 0, ne=16),
    apdu(0x00, 0xC0, 0, 0, ne=16)))
write("chip", "reader-cache", seq(chip(1) | SEL | LOGIN,
    apdu(0x80, 0x92, 0, 0, b"config-1", 256),
    apdu(0x80, 0x94, 0x00, 0x00, bytes(100)),
    apdu(0x80, 0x96, 0, 0, b"config-1", 256),
    apdu(0x80, 0x98, 0x00, 0x00, b"plain text"),
    apdu(0x80, 0x9A, 0x00, 0x00, ne=256),
    apdu(0x80, 0x9C, 0x01, 0x00),
    apdu(0x80, 0x90, 0x02, 0x00)))
write("chip", "note-write", seq(chip(3) | SEL,
    apdu(0x00, 0xCA, 0x02, 0x00, ne=256),
    0xFFFF, ) + b"\x05hello" + seq(0, 0xFFFE,
    apdu(0x80, 0x7C, 0, 0, ne=256),
    apdu(0x80, 0x7E, 0, 0, ne=65536),
    apdu(0x00, 0x88, 0, 0, bytes(16), 256))[1:])
write("chip", "note-perso", seq(chip(2) | SEL,
    apdu(0x80, 0x50, 0, 0, lv8(SO_PIN) + lv8(b"note")),
    0xFFFC,
    apdu(0x80, 0x46, 0x01, 0x00, lv16(b"") + lv16(b""), 256),
    apdu(0x80, 0x70, 0, 0, P256_G),
    apdu(0x80, 0x72, 0, 0, P256_G),
    apdu(0x80, 0x74, 0, 0),
    apdu(0x00, 0x84, 0, 0, ne=16)))
write("chip", "note-rotate", seq(chip(2) | SEL,
    apdu(0x80, 0x50, 0, 0, lv8(SO_PIN) + lv8(b"note")),
    0xFFFC,
    apdu(0x80, 0x46, 0x01, 0x00, lv16(b"") + lv16(b""), 256),
    apdu(0x80, 0x70, 0, 0, P256_G),
    apdu(0x80, 0x72, 0, 0, P256_G),
    apdu(0x80, 0x74, 0, 0),
    apdu(0x00, 0xCA, 0x04, 0x00, ne=256),
    apdu(0x80, 0x76, 0x01, 0x00, P256_G),
    apdu(0x80, 0x76, 0x02, 0x00, P256_G),
    apdu(0x00, 0x84, 0, 0, ne=16),
    apdu(0x80, 0x76, 0x01, 0x00, P256_G + bytes(64))))
IDC_CONFIG = tlv(0x80, b"IDC00002") + tlv(0x81, b"app") + tlv(0x82, b"ISO14443B") + \
    tlv(0x83, b"\x01\xa8") + tlv(0x84, b"\x01\x00")
write("chip", "idcard-perso", seq(chip(4) | SEL,
    apdu(0x00, 0xDA, 0x00, 0x03, IDC_CONFIG),
    apdu(0x00, 0xD6, 0x00, 0x00, bytes(200)),
    apdu(0x00, 0xD6, 0x00, 0xC8, bytes(100)),
    apdu(0x00, 0xB0, 0x00, 0x00, ne=256),
    apdu(0x80, 0x74, 0, 0),
    apdu(0x00, 0xCA, 0x03, 0x00, ne=256)))
write("chip", "idcard-read", seq(chip(5) | SEL | SMALL,
    apdu(0x00, 0xB0, 0x00, 0x00, ne=256),
    apdu(0x00, 0xB0, 0x01, 0x00, ne=256),
    apdu(0x00, 0xB0, 0x00, 0x10, ne=65536),
    apdu(0x00, 0xCA, 0x03, 0x00, ne=256),
    apdu(0x00, 0xCA, 0x01, 0x00, ne=256)))
write("chip", "sam-perso", seq(chip(6) | SEL,
    apdu(0x80, 0xD0, 0, 0, lv8(IDC_CONFIG) + bytes(64), 65536),
    apdu(0x80, 0xD8, 0, 0, bytes(31)),
    apdu(0x80, 0xD8, 0, 0, bytes(32)),
    apdu(0x80, 0x74, 0, 0)))
write("chip", "sam-decode", seq(chip(7) | SEL,
    apdu(0x80, 0xD0, 0, 0, lv8(IDC_CONFIG) + bytes(12) + bytes(200) + bytes(16),
         65536),
    apdu(0x80, 0xD0, 0, 0, lv8(IDC_CONFIG), 65536),
    apdu(0x80, 0xD0, 0, 0, b"\xff" + IDC_CONFIG, 256),
    apdu(0x80, 0xD8, 0, 0, bytes(32))))


# ------------------------------------------------ registration, monitor
# fuzz_note_records: byte 0 is the mode (top of fuzz_note_records.c).
import base64
import hashlib


def feature(prefix, serial, mac="A" * 16, kfp="B" * 20):
    """A feature record with the right public check code (note/feature.h)."""
    md = hashlib.sha256(b"mintline feature chk v1\x00" + prefix + b"\x00" +
                        serial).digest()
    chk = base64.b32encode(md).decode()[:8]
    return b"ML1|%s|%s|%s|%s|%s" % (prefix, serial, chk.encode(),
                                     mac.encode(), kfp.encode())


NOTE_CHIP = b"FUZZCHIP00000001"     # enrolled by the harness
FEAT = feature(b"AB", b"12345678")
write("note_records", "enrol", b"\x00" + tlv(0xE0, b"FUZZCHIP00000002") +
      tlv(0xE1, P256_G))
write("note_records", "upload", b"\x01" + tlv(0xD0, NOTE_CHIP) +
      tlv(0xD5, bytes(200)) + tlv(0xD6, bytes(64)))
write("note_records", "query", b"\x02" + tlv(0xD0, NOTE_CHIP) +
      tlv(0xD1, FEAT) + tlv(0xE1, P256_G))
write("note_records", "reply", b"\x03" + tlv(0xE8, b"\x00") +
      tlv(0xE9, b"\x00") + tlv(0xEA, b"AB12345678") +
      tlv(0xEB, bytes(7) + b"\x01") + tlv(0xEC, b"\x01"))
write("note_records", "inner", b"\x04" + tlv(0xD0, NOTE_CHIP) +
      tlv(0xD1, FEAT) + tlv(0xD2, bytes(16)) + tlv(0xD3, bytes(64)))
write("note_records", "feature", b"\x05" + FEAT)
write("note_records", "noteid", b"\x06AB|12345678")
write("note_records", "noteid-long", b"\x06Z9X1|000000001234")
write("note_records", "check-feature", b"\x07" + tlv(0xE0, NOTE_CHIP) +
      tlv(0xE1, P256_G) + tlv(0xEA, b"AB12345678") + tlv(0xD1, FEAT))

# fuzz_mon_proto: byte 0 bit 0 = seal key; then packets (hdr, len, bytes).


def mon_pkt(t, sid, body=b"", notify=False):
    p = bytes([t]) + sid.to_bytes(8, "big") + body
    return bytes([(0x80 if notify else 0) | (len(p) >> 8), len(p) & 0xFF]) + p


write("mon_proto", "startup", b"\x01" + mon_pkt(1, 0) +
      mon_pkt(6, 0, b"pkcs11:token=t;object=issuer") +
      mon_pkt(6, 0, b"pkcs11:module-path=/dev/null;object=issuer"))
write("mon_proto", "session", b"\x00" + mon_pkt(2, 1, bytes(32)) +
      mon_pkt(3, 1, P256_G) + mon_pkt(4, 1) + mon_pkt(5, 1, P256_G) +
      mon_pkt(7, 1, notify=True) + mon_pkt(5, 1, P256_G))
write("mon_proto", "replay", b"\x01" + mon_pkt(2, 5, bytes(32)) +
      mon_pkt(2, 5, bytes(32)) + mon_pkt(3, 5 + (1 << 18), P256_G) +
      mon_pkt(3, 5, P256_G) + mon_pkt(4, 5) + mon_pkt(1, 0))

# fuzz_idcard_format: byte 0 = 0 config, 1 ID information, 2 sealed blob.


def idnum(first17):
    s = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(first17))
    return first17 + "10X98765432"[s % 11]


IDC_INFO = (tlv(0x80, "张三".encode()) + tlv(0x81, b"\x01") +
            tlv(0x82, "汉".encode()) + tlv(0x83, b"19900101") +
            tlv(0x84, "北京市东城区".encode()) +
            tlv(0x85, idnum("11010119900101123").encode()) +
            tlv(0x86, "北京市公安局".encode()) + tlv(0x87, b"20200101") +
            tlv(0x88, b"20400101") + tlv(0x89, bytes(range(256)) * 2))
write("idcard_format", "config", b"\x00" + IDC_CONFIG)
write("idcard_format", "info", b"\x01" + IDC_INFO)
write("idcard_format", "info-finger", b"\x01" + IDC_INFO.replace(
    tlv(0x88, b"20400101"), tlv(0x88, "长期".encode())) +
    tlv(0x8A, b"\x55" * 300))
write("idcard_format", "blob", b"\x02" + bytes(12) + bytes(64) + bytes(16))

# fuzz_host_resp: byte 0 = path (bit 7: repeat the last answer); then
# chip answers, each u16be length | data || SW1 SW2.


def resp(data, sw=0x9000):
    b = data + sw.to_bytes(2, "big")
    return len(b).to_bytes(2, "big") + b


CHIP_INFO = (tlv(0xC0, b"\x02") + tlv(0xC1, b"NOTE000000000001") +
             tlv(0xC2, b"note") + tlv(0xC3, b"\x00\x21") +
             tlv(0xC4, b"\x03") + tlv(0xC5, b"\x03") + tlv(0xC6, b"\x03") +
             tlv(0xC7, b"\x00\x00\x10\x00") + tlv(0xC8, b"\x01\x00") +
             tlv(0xC9, b"\x00"))
write("host_resp", "info", b"\x00" + resp(CHIP_INFO))
write("host_resp", "info-chained", b"\x00" + resp(CHIP_INFO[:20], 0x6100) +
      resp(CHIP_INFO[20:]))
write("host_resp", "select-info", b"\x01" + resp(b"\x6f\x00") +
      resp(CHIP_INFO))
write("host_resp", "p11-info", b"\x02" + resp(CHIP_INFO))
write("host_resp", "p11-objects", b"\x03" + resp(CHIP_INFO) +
      resp(b"\x00\x01\x02\x00\x00\x10" + b"\x00\x02\x03\x09\x00\x10" +
           b"\x00\x03\x00\x00\x00\x08") +
      resp(tlv(0x80, b"\x02") + tlv(0x81, b"\x00") + tlv(0x82, b"") +
           tlv(0x86, P256_G)) +
      resp(b"", 0x6982) +
      resp(tlv(0x80, b"\x00") + tlv(0x81, b"\x00") + tlv(0x82, b"data")) +
      resp(tlv(0x80, b"\x03") + tlv(0x81, b"\x09") + tlv(0x86, P256_G)))
