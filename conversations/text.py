"""Text helpers without models (importable from the app config)."""

import unicodedata


def text_unaccent(text: str) -> str:
    """``text`` without its accents ("João" -> "Joao"): what the console's search compares."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))
