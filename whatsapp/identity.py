"""WhatsApp identities: Brazilian mobile numbers with and without the ninth digit."""

import re

_DIGITS = re.compile(r"\D+")
# A number as people type it: digits, spaces and the usual punctuation, an optional leading +.
_TYPED_NUMBER = re.compile(r"^\+?[\d\s().-]+$")


def digits(value: str) -> str:
    return _DIGITS.sub("", value or "")


def wa_id_variants(wa_id: str) -> list[str]:
    """Every form under which the same WhatsApp user may appear, ``wa_id`` first.

    A Brazilian mobile (``55`` + 2-digit area code + ``9`` + 8 digits) also appears without the
    ninth digit (``55 11 8765-4321``); both forms are one customer. Landlines (local numbers
    starting with 2-5) are never merged with anything.
    """
    number = digits(wa_id)
    if not number:
        return []
    variants = [number]
    if number.startswith("55"):
        if len(number) == 13 and number[4] == "9" and number[5] in "6789":
            variants.append(number[:4] + number[5:])
        elif len(number) == 12 and number[4] in "6789":
            variants.append(number[:4] + "9" + number[4:])
    return variants


def typed_number_is_plausible(value: str) -> bool:
    """Whether a number typed at the desk can be a WhatsApp number: E.164's 8 to 15 digits
    (country code included); a Brazilian one (``55``) has 12 or 13 (area code, with or without
    the ninth digit)."""
    if not _TYPED_NUMBER.match((value or "").strip()):
        return False
    number = digits(value)
    if number.startswith("55"):
        return len(number) in (12, 13)
    return 8 <= len(number) <= 15


def e164(wa_id: str) -> str:
    number = digits(wa_id)
    return f"+{number}" if number else ""
