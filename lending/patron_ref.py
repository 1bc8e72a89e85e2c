"""A patron's pseudonym in the domain events: tells patrons apart without saying who they are.

`patron_ref(email)` is the same for every loan and hold of one patron (the address lower-cased, as
the API stores it), different between two patrons, and cannot be turned back into the email without
the key: an HMAC-SHA256 keyed with PATRON_REF_KEY (default: derived from DJANGO_SECRET_KEY by
Django's `salted_hmac`, under this module's own salt), its first 128 bits in base32, e.g.
`p_3kq7m2x4...` (28 characters). A plain hash of the email would not do: anyone can hash a list of
addresses and match them.

Changing the key changes every patron's ref, so consumers see new patrons from then on: set
PATRON_REF_KEY explicitly to rotate DJANGO_SECRET_KEY without that.

An anonymised loan or hold has no patron any more (its email is a random stand-in,
`lending.privacy`): its ref is None, so nothing published after the anonymisation links it to the
patron's other loans.
"""

from __future__ import annotations

import base64

from django.conf import settings
from django.utils.crypto import salted_hmac

from lending.models import ANONYMISED_SUFFIX

PREFIX = "p_"
# The HMAC's purpose: the same secret keys other things (idempotency fingerprints, sessions).
KEY_SALT = "lending.patron_ref"
BITS = 128


def patron_ref(email: str) -> str | None:
    """The patron's pseudonym; None for an anonymised row's stand-in address."""
    normalised = email.strip().lower()
    if normalised.endswith(ANONYMISED_SUFFIX):
        return None
    digest = salted_hmac(KEY_SALT, normalised, secret=_key(), algorithm="sha256").digest()
    encoded = base64.b32encode(digest[: BITS // 8]).decode("ascii").rstrip("=").lower()
    return PREFIX + encoded


def _key() -> str:
    return settings.PATRON_REF_KEY or settings.SECRET_KEY
