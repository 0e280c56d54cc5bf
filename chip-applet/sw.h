/* ISO/IEC 7816-4 status words used by the mintline card OS. */
#ifndef SW_H
#define SW_H

#define SW_OK				0x9000
#define SW_BYTES_REMAINING(n)		(0x6100 | ((n) & 0xff))	/* GET RESPONSE */
#define SW_WARN_PIN_TRIES(n)		(0x63C0 | ((n) & 0x0f))
#define SW_MEMORY_FAILURE		0x6581
#define SW_WRONG_LENGTH			0x6700
#define SW_SECURITY_NOT_SATISFIED	0x6982
#define SW_AUTH_BLOCKED			0x6983
#define SW_DATA_INVALID			0x6984
#define SW_CONDITIONS_NOT_SATISFIED	0x6985
#define SW_COMMAND_NOT_ALLOWED		0x6986
#define SW_WRONG_DATA			0x6A80
#define SW_FUNC_NOT_SUPPORTED		0x6A81
#define SW_FILE_NOT_FOUND		0x6A82
#define SW_NOT_ENOUGH_MEMORY		0x6A84
#define SW_INCORRECT_P1P2		0x6A86
#define SW_DATA_NOT_FOUND		0x6A88
#define SW_WRONG_P1P2			0x6B00
#define SW_WRONG_LE(n)			(0x6C00 | ((n) & 0xff))
#define SW_INS_NOT_SUPPORTED		0x6D00
#define SW_CLA_NOT_SUPPORTED		0x6E00
#define SW_UNKNOWN			0x6F00

#endif
