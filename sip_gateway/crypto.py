"""A kiosk account's API key, sealed under its SIP password.

The gateway must present the account's API key to the lending API, and the API stores keys only
hashed, so the gateway keeps the key itself, encrypted: AES-256-GCM under a key derived from the SIP
password with scrypt (a fresh salt and nonce per seal), the account's login as associated data (a
sealed key copied onto another account does not open). A database dump alone therefore reveals no
usable key; only a `93` login with the right password opens it. Changing the password means a new
API key (the old one cannot be re-sealed without the old password).
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

SCHEME = "scrypt-aesgcm"
# scrypt's cost: 2**14 rounds of 8-block mixing, 16 MiB and tens of milliseconds per login (a
# gateway caches an opened key per login, so a kiosk pays it once per connection).
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
ALLOWED_COSTS = frozenset(2**power for power in range(10, 18))
SALT_BYTES = 16
NONCE_BYTES = 12


def _key(password: str, salt: bytes, n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=SCRYPT_R, p=SCRYPT_P).derive(password.encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(secret: str, password: str, login: str) -> str:
    """`secret` encrypted under `password`, bound to `login`: `scrypt-aesgcm$n$salt$nonce$ciphertext`."""
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(_key(password, salt, SCRYPT_N)).encrypt(nonce, secret.encode(), login.encode())
    return "$".join([SCHEME, str(SCRYPT_N), _b64(salt), _b64(nonce), _b64(ciphertext)])


def unseal(sealed: str, password: str, login: str) -> str | None:
    """The secret, or None when the password (or login) is not the one it was sealed with, or the
    sealed text is not ours."""
    try:
        scheme, n, salt, nonce, ciphertext = sealed.split("$")
        cost = int(n)
        # Only costs we would write: a tampered row must not make the gateway allocate gigabytes.
        if scheme != SCHEME or cost not in ALLOWED_COSTS:
            return None
        key = _key(password, _unb64(salt), cost)
        return AESGCM(key).decrypt(_unb64(nonce), _unb64(ciphertext), login.encode()).decode()
    except (ValueError, InvalidTag, UnicodeDecodeError):
        return None
