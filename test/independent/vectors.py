#!/usr/bin/env python3
"""A second implementation of securelogin's protocol maths, for the published test vectors.

Reads docs/vectors/*.json, recomputes every value from the inputs alone (never from the expected
outputs), and prints what it computed as one JSON object on stdout, shaped like the vector files,
for test/independent/python.test.ts to compare with them. Only Python's standard library: it
shares no code with src/auth, secure-remote-password, otplib, jose or Node's OpenSSL, so a value
both sides agree on is what the specification (docs/protocol.md) says, not what one library does.

Usage: python3 test/independent/vectors.py docs/vectors
"""

import base64
import hashlib
import hmac
import json
import os
import re
import sys
import unicodedata

# No __pycache__ beside the sources: the test run leaves the working tree as it found it.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ed25519  # noqa: E402  (after the path is set)

if sys.version_info < (3, 6):
    sys.exit("test/independent/vectors.py needs Python 3.6 or later (hashlib.scrypt)")


def sha256(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


def unhex(text):
    return bytes.fromhex(text)


# --- SRP-6a (docs/protocol.md, "Password stretching" and "SRP") -------------------------------

STRETCH_LABEL = b"securelogin password v1\x00"


class Group:
    def __init__(self, n_hex, g_hex):
        self.n_bytes = unhex(n_hex)
        self.n = int.from_bytes(self.n_bytes, "big")
        self.width = len(self.n_bytes)
        self.g_bytes = unhex(g_hex)
        self.g = int.from_bytes(self.g_bytes, "big")
        # k = H(N | g), g as its one byte
        self.k = int.from_bytes(sha256(self.n_bytes, self.g_bytes), "big")
        hn, hg = sha256(self.n_bytes), sha256(self.g_bytes)
        self.hn_xor_hg = bytes(a ^ b for a, b in zip(hn, hg))

    def pad(self, n):
        return n.to_bytes(self.width, "big")


def group_values(group):
    return {
        "k": group.k.to_bytes(32, "big").hex(),
        "H_N_xor_H_g": group.hn_xor_hg.hex(),
    }


def kdf_schema_ok(kdf):
    """The wire schema of a kdf object: exactly name, logN, r, p; scrypt; integers in range."""
    if not isinstance(kdf, dict) or set(kdf) != {"name", "logN", "r", "p"} or kdf["name"] != "scrypt":
        return False
    bounds = {"logN": (1, 30), "r": (1, 64), "p": (1, 64)}
    for name, (low, high) in bounds.items():
        value = kdf[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return False
    return True


def kdf_limits_ok(kdf):
    """The floor and cap: 64 to 256 MiB of 128 * r * 2^logN, logN <= 20, p <= 4."""
    if kdf.get("name") != "scrypt":
        return False
    values = [kdf.get(name) for name in ("logN", "r", "p")]
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        return False
    log_n, r, p = values
    memory = 128 * r * 2**log_n
    return 64 * 2**20 <= memory <= 256 * 2**20 and log_n <= 20 and p <= 4


def stretch(password_nfkc, salt, kdf):
    n = 2 ** kdf["logN"]
    key = hashlib.scrypt(
        password_nfkc.encode("utf-8"),
        salt=STRETCH_LABEL + salt,
        n=n,
        r=kdf["r"],
        p=kdf["p"],
        maxmem=2 * 128 * kdf["r"] * n + 2**20,
        dklen=32,
    )
    return key.hex()  # lower-case hex text: what x hashes


def registration(vectors):
    group = Group(vectors["group"]["N"], vectors["group"]["g"])
    cases = []
    for case in vectors["cases"]:
        nfkc = unicodedata.normalize("NFKC", case["password"])
        salt = unhex(case["salt"])
        p_prime = stretch(nfkc, salt, case["kdf"])
        inner = sha256((case["I"] + ":" + p_prime).encode("utf-8"))
        x = sha256(salt, inner)
        v = pow(group.g, int.from_bytes(x, "big"), group.n)
        cases.append(
            {
                "id": case["id"],
                "password_utf8": case["password"].encode("utf-8").hex(),
                "password_nfkc": nfkc,
                "password_nfkc_utf8": nfkc.encode("utf-8").hex(),
                "scrypt_salt": (STRETCH_LABEL + salt).hex(),
                "P_prime": p_prime,
                "H_I_P_prime": inner.hex(),
                "x": x.hex(),
                "v": group.pad(v).hex(),
            }
        )
    nfkc = [
        {
            "input_utf8": c["input"].encode("utf-8").hex(),
            "nfkc": unicodedata.normalize("NFKC", c["input"]),
            "nfkc_utf8": unicodedata.normalize("NFKC", c["input"]).encode("utf-8").hex(),
        }
        for c in vectors["nfkc"]
    ]
    kdf_checks = [
        {
            "schema": "ok" if kdf_schema_ok(c["kdf"]) else "ERR_PROTOCOL",
            "limits": "ok" if kdf_limits_ok(c["kdf"]) else "ERR_KDF_LIMIT",
        }
        for c in vectors["kdf_checks"]
    ]

    def verifier_ok(text):
        if not re.fullmatch(r"[0-9a-f]{%d}" % (2 * group.width), text):
            return False
        return 1 < int(text, 16) < group.n

    verifier_checks = [{"server": "ok" if verifier_ok(c["v"]) else "ERR_PROTOCOL"} for c in vectors["verifier_checks"]]
    return {
        "group": group_values(group),
        "stretch_label": STRETCH_LABEL.hex(),
        "cases": cases,
        "nfkc": nfkc,
        "kdf_checks": kdf_checks,
        "verifier_checks": verifier_checks,
    }


def login(vectors):
    group = Group(vectors["group"]["N"], vectors["group"]["g"])
    N, g, k = group.n, group.g, group.k
    user = vectors["user"]
    I = user["I"]
    salt = unhex(user["salt"])
    x = int(user["x"], 16)
    v = int(user["v"], 16)
    cases = []
    for case in vectors["cases"]:
        a = int(case["a"], 16)
        b = int(case["b"], 16)
        A = pow(g, a, N)
        B = (k * v + pow(g, b, N)) % N
        A_bytes, B_bytes = group.pad(A), group.pad(B)
        u_bytes = sha256(A_bytes, B_bytes)
        u = int.from_bytes(u_bytes, "big")
        # The server: S = (A * v^u)^b; the client: (B - k * g^x)^(a + u * x), the base reduced mod N.
        S_server = pow(A * pow(v, u, N) % N, b, N)
        S_client = pow((B - k * pow(g, x, N)) % N, a + u * x, N)
        S_bytes = group.pad(S_server)
        K = sha256(S_bytes)
        M1 = sha256(group.hn_xor_hg, sha256(I.encode("utf-8")), salt, A_bytes, B_bytes, K)
        M2 = sha256(A_bytes, M1, K)
        cases.append(
            {
                "id": case["id"],
                "A": A_bytes.hex(),
                "B": B_bytes.hex(),
                "u": u_bytes.hex(),
                "S": S_bytes.hex(),
                "S_client": group.pad(S_client).hex(),
                "K": K.hex(),
                "M1": M1.hex(),
                "M2": M2.hex(),
            }
        )
    A_checks = [{"server": "ok" if 0 < int(c["A"], 16) < N else "ERR_AUTH_FAILED"} for c in vectors["A_checks"]]
    B_checks = [{"client": "ok" if int(c["B"], 16) % N != 0 else "ERR_SERVER_AUTH_FAILED"} for c in vectors["B_checks"]]
    return {"group": group_values(group), "cases": cases, "A_checks": A_checks, "B_checks": B_checks}


# --- TOTP (RFC 4226, RFC 6238; docs/protocol.md, "TOTP") ----------------------------------------


def hotp(secret, counter, digits):
    message = counter.to_bytes(8, "big")
    mac = hmac.new(secret, message, hashlib.sha1).digest()
    offset = mac[19] & 0x0F
    binary = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return message, mac, str(binary % 10**digits).zfill(digits)


def base32_unpadded(data):
    return base64.b32encode(data).decode("ascii").rstrip("=")


def totp(vectors):
    secret = vectors["secret_ascii"].encode("ascii")
    rows = []
    for row in vectors["rows"]:
        T = row["time"] // 30
        message, mac, code_8 = hotp(secret, T, 8)
        rows.append(
            {
                "time": row["time"],
                "T": T,
                "T_bytes": message.hex(),
                "hmac_sha1": mac.hex(),
                "code_8": code_8,
                "code": hotp(secret, T, 6)[2],
            }
        )
    verify = []
    for case in vectors["verify"]:
        T = case["time"] // 30
        code = case["code"]
        matched = None
        if re.fullmatch(r"[0-9]{6}", code, flags=re.ASCII):
            for step in (T - 1, T, T + 1):
                if hmac.compare_digest(hotp(secret, step, 6)[2], code):
                    matched = step
        verify.append({"valid": True, "T": matched} if matched is not None else {"valid": False})
    otpauth = []
    for case in vectors["otpauth"]:
        s = base32_unpadded(unhex(case["secret_hex"]))
        name = case["username"]  # [a-z0-9._-]: nothing in it needs percent-encoding
        otpauth.append(
            {
                "secret_base32": s,
                "uri": "otpauth://totp/securelogin:%s?secret=%s&issuer=securelogin&algorithm=SHA1&digits=6&period=30"
                % (name, s),
            }
        )
    return {
        "secret_hex": secret.hex(),
        "secret_base32": base32_unpadded(secret),
        "rows": rows,
        "verify": verify,
        "otpauth": otpauth,
    }


# --- Recovery codes (docs/protocol.md, "Recovery codes") ----------------------------------------

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def normalize_recovery_code(text):
    chars = []
    for c in text:
        if "A" <= c <= "Z":
            c = chr(ord(c) + 32)
        if c in " \t\r\n-":
            continue
        c = {"o": "0", "i": "1", "l": "1"}.get(c, c)
        chars.append(c)
    if len(chars) != 10 or any(c not in ALPHABET for c in chars):
        return None
    return "".join(chars[:5]) + "-" + "".join(chars[5:])


def recovery(vectors):
    normalize = []
    for case in vectors["normalize"]:
        canonical = normalize_recovery_code(case["input"])
        normalize.append({"error": "ERR_USAGE"} if canonical is None else {"canonical": canonical})
    pattern = re.compile(r"[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}")
    wire = [{"server": "ok" if pattern.fullmatch(c["code"]) else "ERR_PROTOCOL"} for c in vectors["wire"]]
    random = unhex(vectors["generate"]["random"])
    codes = []
    for i in range(10):
        chars = "".join(ALPHABET[byte % 32] for byte in random[10 * i : 10 * i + 10])
        codes.append(chars[:5] + "-" + chars[5:])
    h = vectors["hash"]
    kdf = h["kdf"]
    digest = hashlib.scrypt(
        h["code"].replace("-", "").encode("ascii"),
        salt=unhex(h["salt"]),
        n=2 ** kdf["logN"],
        r=kdf["r"],
        p=kdf["p"],
        maxmem=2 * 128 * kdf["r"] * 2 ** kdf["logN"] + 2**20,
        dklen=32,
    )
    return {
        "alphabet": ALPHABET,
        "normalize": normalize,
        "wire": wire,
        "generate": {"codes": codes},
        "hash": {"hash": digest.hex()},
    }


# --- Frames (docs/protocol.md, "Frames") ---------------------------------------------------------

MAX_BODY = 65536


def _no_constant(name):
    raise ValueError("not JSON: " + name)


def read_frames(data):
    """What a frame reader makes of data: the messages, an error code, or an incomplete frame."""
    messages = []
    at = 0
    while True:
        if len(data) - at < 4:
            break
        length = int.from_bytes(data[at : at + 4], "big")
        if length > MAX_BODY:
            return {"error": "ERR_FRAME_TOO_LARGE"}
        if len(data) - at - 4 < length:
            break
        body = data[at + 4 : at + 4 + length]
        at += 4 + length
        try:
            # Strict UTF-8 (no overlong forms, no surrogates), then exactly one JSON text: NaN and
            # Infinity are Python's extensions, not JSON.
            messages.append(json.loads(body.decode("utf-8"), parse_constant=_no_constant))
        except (UnicodeDecodeError, ValueError):
            return {"error": "ERR_PROTOCOL"}
    if at < len(data):
        return {"incomplete": messages}
    return messages


def frames(vectors):
    cases = []
    for case in vectors["cases"]:
        data = b""
        for segment in case["segments"]:
            one = unhex(segment["hex"]) if "hex" in segment else segment["utf8"].encode("utf-8")
            data += one * segment.get("repeat", 1)
        cases.append({"id": case["id"], "read": read_frames(data)})
    return {"cases": cases}


# --- Signed tokens (docs/protocol.md, "Signed tokens"; docs/tokens.md) --------------------------


def b64u_decode_canonical(part):
    """The bytes of an unpadded base64url part, or None unless the part is their one spelling."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", part) or len(part) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    if base64.urlsafe_b64encode(data).decode("ascii").rstrip("=") != part:
        return None
    return data


def b64u(data):
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


USERNAME = re.compile(r"[a-z0-9._-]{1,64}")
AUDIENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}")
CLAIMS = {"iss", "sub", "role", "aud", "iat", "exp", "jti", "sid"}


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def verify_token(token, jwks, options):
    """The verdict on a token: "ok", or the error code (the order of the checks is the verifier's)."""
    invalid = "ERR_TOKEN_INVALID"
    tolerance = options.get("clockToleranceSeconds", 30)
    now = options["now"]
    if len(token) > 4096:
        return invalid
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 3:
        return invalid
    decoded = [b64u_decode_canonical(part) for part in parts]
    if any(d is None for d in decoded):
        return invalid
    try:
        header = json.loads(decoded[0].decode("utf-8"))
    except ValueError:
        return invalid
    if not isinstance(header, dict) or header.get("alg") != "EdDSA":
        return invalid
    keys = [key for key in jwks["keys"] if key.get("kid") == header.get("kid")]
    if len(keys) != 1:
        return invalid
    public = b64u_decode_canonical(keys[0]["x"])
    if not ed25519.verify(public, (parts[0] + "." + parts[1]).encode("ascii"), decoded[2]):
        return invalid
    if header.get("typ") != "JWT":
        return invalid
    try:
        claims = json.loads(decoded[1].decode("utf-8"))
    except ValueError:
        return invalid
    if not isinstance(claims, dict) or not CLAIMS <= set(claims):
        return invalid
    if "issuer" in options and claims["iss"] != options["issuer"]:
        return invalid
    if claims["aud"] != options["audience"]:
        return "ERR_TOKEN_AUDIENCE"
    if not is_int(claims["iat"]) or not is_int(claims["exp"]):
        return invalid
    if claims["exp"] <= now - tolerance:
        return "ERR_TOKEN_EXPIRED"
    shapes = [
        set(claims) == CLAIMS,
        isinstance(claims["iss"], str) and len(claims["iss"]) <= 128,
        isinstance(claims["sub"], str) and USERNAME.fullmatch(claims["sub"]),
        claims["role"] in ("regular_user", "admin", "system_admin"),
        isinstance(claims["aud"], str) and AUDIENCE.fullmatch(claims["aud"]),
        isinstance(claims["jti"], str) and re.fullmatch(r"[A-Za-z0-9_-]{22}", claims["jti"]),
        isinstance(claims["sid"], str) and re.fullmatch(r"[0-9a-f]{32}", claims["sid"]),
    ]
    if not all(shapes):
        return invalid
    if claims["iat"] > now + tolerance or claims["exp"] - claims["iat"] > 3600:
        return invalid
    return "ok"


def signed_tokens(vectors):
    seed = unhex(vectors["key"]["seed"])
    x = b64u(ed25519.public_key(seed))
    # RFC 7638: the required members of an OKP key, in lexicographic order, no white space.
    kid = b64u(sha256(('{"crv":"Ed25519","kty":"OKP","x":"%s"}' % x).encode("ascii")))
    other_x = b64u(ed25519.public_key(unhex(vectors["other_key"]["seed"])))
    header, payload, _ = vectors["token"].split(".")
    cases = []
    for case in vectors["cases"]:
        verdict = verify_token(case["token"], vectors["jwks"], case["options"])
        cases.append({"id": case["id"], "expect": {"ok": True} if verdict == "ok" else {"error": verdict}})
    return {
        "key": {"d": b64u(seed), "x": x, "kid": kid},
        "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}]},
        "other_key": {"x": other_x},
        "header_json": base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)).decode("utf-8"),
        "claims": json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))),
        "cases": cases,
    }


CHECKS = {
    "registration.json": registration,
    "login.json": login,
    "totp.json": totp,
    "recovery-codes.json": recovery,
    "frames.json": frames,
    "signed-tokens.json": signed_tokens,
}


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "docs/vectors"
    names = sorted(name for name in os.listdir(directory) if name.endswith(".json"))
    result = {"python": sys.version.split()[0], "unicode": unicodedata.unidata_version, "files": names}
    for name in names:
        if name not in CHECKS:
            sys.exit("test/independent/vectors.py has no check for docs/vectors/" + name)
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            result[name] = CHECKS[name](json.load(f))
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
