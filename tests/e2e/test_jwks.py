"""Client tokens verified against a JWKS file (--jwt-jwks): RSA, EC P-256
and oct keys, selected by the token's kid; a kid naming another key, a key
that is not in the set, and a broken JWKS file are refused."""
import json
import subprocess

from cryptography.hazmat.primitives import hashes, hmac as chmac
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import BIN, per_test_timeout
from wsclient import Client, b64url, run

_timeout = per_test_timeout(60)


def b64int(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64url(n.to_bytes(size, "big"))


def jws(header, claims, sign):
    signing = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
    return signing.decode() + "." + b64url(sign(signing))


def rs256(key):
    return lambda m: key.sign(m, padding.PKCS1v15(), hashes.SHA256())


def es256(key):
    def sign(m):
        r, s = decode_dss_signature(key.sign(m, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JOSE form, not DER
    return sign


def hs256(secret):
    def sign(m):
        h = chmac.HMAC(secret, hashes.SHA256())
        h.update(m)
        return h.finalize()
    return sign


def test_jwks_keys_and_kids(herald_factory, tmp_path):
    rkey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ekey = ec.generate_private_key(ec.SECP256R1())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    secret = b"s" * 32
    rn = rkey.public_key().public_numbers()
    en = ekey.public_key().public_numbers()
    jwks = {"keys": [
        {"kty": "RSA", "kid": "r1", "use": "sig", "n": b64int(rn.n), "e": b64int(rn.e)},
        {"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64int(en.x, 32), "y": b64int(en.y, 32)},
        {"kty": "oct", "kid": "h1", "k": b64url(secret)},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": b64int(rn.n), "e": b64int(rn.e)},
    ]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    h = herald_factory(args=["--jwt-jwks", str(path)])
    good = {
        "RS256 kid r1": jws({"alg": "RS256", "kid": "r1"}, {"sub": "u1"}, rs256(rkey)),
        "RS256 without kid": jws({"alg": "RS256"}, {"sub": "u1"}, rs256(rkey)),
        "ES256 kid e1": jws({"alg": "ES256", "kid": "e1"}, {"sub": "u1"}, es256(ekey)),
        "HS256 kid h1": jws({"alg": "HS256", "kid": "h1"}, {"sub": "u1"}, hs256(secret)),
    }
    bad = {
        "RS256 naming the EC key's kid": jws({"alg": "RS256", "kid": "e1"}, {"sub": "u1"}, rs256(rkey)),
        "RS256 with an unknown kid": jws({"alg": "RS256", "kid": "nope"}, {"sub": "u1"}, rs256(rkey)),
        "RS256 signed by a key not in the set": jws({"alg": "RS256", "kid": "r1"}, {"sub": "u1"}, rs256(other)),
        "HS256 signed with the RSA modulus": jws({"alg": "HS256"}, {"sub": "u1"},
                                                hs256(rn.n.to_bytes(256, "big"))),
    }

    async def go():
        for what, tok in good.items():
            c = await Client.open(h)
            r = await c.call({"connect": {"token": tok}})
            assert "connect" in r, (what, r)
            await c.close()
        for what, tok in bad.items():
            c = await Client.open(h)
            await c.send({"connect": {"token": tok}})
            assert (await c.closed())[0] == 3500, what

    run(go())


def test_broken_jwks_file_is_a_clear_start_error(tmp_path):
    for text, words in (("{", "JWKS file"), ('{"keys":[]}', "JWKS file"),
                        ('{"keys":[{"kty":"RSA","n":"AQAB"}]}', "RSA key needs"),
                        ('{"keys":[{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}]}', "P-256"),
                        ('{"keys":[{"kty":"OKP"}]}', "unsupported kty")):
        path = tmp_path / "jwks.json"
        path.write_text(text)
        p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
                            "--jwt-jwks", str(path)], capture_output=True, text=True, timeout=20)
        assert p.returncode == 2 and words in p.stderr, (text, p.returncode, p.stderr)
