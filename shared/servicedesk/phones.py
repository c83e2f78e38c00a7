"""Phone numbers in E.164, however people typed them into ERPNext (spaces, dashes, `00`,
national forms): the key contacts are found by and messages are sent to."""

from __future__ import annotations

import re

E164_MIN_DIGITS = 7
E164_MAX_DIGITS = 15

_EXTENSION = re.compile(r"\s*(?:ext\.?|x|#)\s*\d+\s*$", re.IGNORECASE)
_SCHEME = re.compile(r"^\s*(?:tel|whatsapp):", re.IGNORECASE)
_TRUNK_ZERO = re.compile(r"(?<=\d)\s*\(0\)")
_SEPARATORS = re.compile(r"[\s\-./()\u00a0]")


def normalise_e164(raw: str | None, default_country_code: str | None = None) -> str | None:
    """`raw` as E.164 (`+` then 7 to 15 digits, no leading 0), or None when it cannot be one.

    Takes what people type into ERPNext: spaces, dashes, dots, brackets, a `(0)` trunk digit after
    the country code (`+44 (0)20 ...`), `00` for `+`, a `tel:` or `whatsapp:` prefix, and an
    extension (dropped). A national number (leading 0) needs `default_country_code` ("44" or
    "+44"), else None; digits with neither `+`, `00` nor `0` in front are read as starting with
    the country code already (as WhatsApp's WaId is written).
    """
    if not raw:
        return None
    text = _EXTENSION.sub("", _SCHEME.sub("", raw))
    text = _SEPARATORS.sub("", _TRUNK_ZERO.sub("", text))
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    elif text.startswith("0"):
        if not default_country_code:
            return None
        digits = default_country_code.lstrip("+") + text[1:]
    else:
        digits = text
    valid = digits.isascii() and digits.isdigit() and not digits.startswith("0")
    if not valid or not E164_MIN_DIGITS <= len(digits) <= E164_MAX_DIGITS:
        return None
    return "+" + digits
