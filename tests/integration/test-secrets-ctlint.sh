#!/usr/bin/env bash
# Constant-time comparison lint: MACs, tags, signatures, PINs,
# cryptograms and other secrets are compared with ml_ct_eq()
# (CRYPTO_memcmp), never with memcmp/bcmp/strcmp/strncmp, whose time
# depends on the position of the first difference.  A comparison flagged
# here that is not of a secret takes a "ct-ok: reason" comment on its line.
#
#   test-secrets-ctlint.sh [SOURCE_ROOT]
set -u
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
dirs=""
for d in common hs pkcs11 server station chip-applet idread chiplink issuance tools; do
	[ -d "$d" ] && dirs="$dirs $d"
done
# a call of a variable-time comparison whose arguments name a secret
secret='(mac|tag|hmac|cmac|gmac|sig|signature|pin|puk|secret|cryptogram|otp|auth_?code|mic|digest|verifier|resp(onse)?|proof)'
hits=$(grep -rnE --include='*.c' --include='*.h' \
    "\b(memcmp|bcmp|strcmp|strncmp|strcasecmp)\s*\(" $dirs |
    grep -iE "\((.*[^a-z0-9])?[a-z0-9_>.-]*${secret}[a-z0-9_]*\b" |
    grep -v "ct-ok:" |
    grep -vE "^[^:]+:[0-9]+:\s*(\*|/\*)")
n=0
if [ -n "$hits" ]; then
	n=$(printf '%s\n' "$hits" | wc -l)
	echo "variable-time comparisons of secrets (use ml_ct_eq, or mark ct-ok: reason):"
	printf '%s\n' "$hits" | sed 's/^/  /'
fi
calls=$(grep -rnE --include='*.c' "\bml_ct_eq\s*\(|CRYPTO_memcmp\s*\(" $dirs | wc -l)
echo "# $calls constant-time comparisons in the tree, $n variable-time comparisons of secrets"
[ "$n" = 0 ]
