"""A Lucene-like English analyzer (what Pyserini/Anserini index BEIR and MS MARCO with).

Pipeline, as Anserini's ``DefaultEnglishAnalyzer`` (porter, default stop words)::

    StandardTokenizer -> EnglishPossessiveFilter -> LowerCaseFilter -> StopFilter -> PorterStemFilter

* The tokenizer approximates Lucene's ``StandardTokenizer`` (UAX#29 word breaks, max token length
  255, longer tokens chopped). Character classes come from :mod:`unicodedata` general categories
  plus the explicit UAX#29 punctuation lists, so it is deterministic for a given Python version:

  - letters (``L*``, ``Nl``), digits (``Nd``) and ExtendNumLet (``_`` and friends) make words;
    letters and digits join each other (``abc123``); combining marks and format characters
    (``Mn Mc Me Cf``, e.g. soft hyphen) never break a word;
  - MidLetter (``: · ׳ ‧``) joins letters on both sides, MidNum (``, ;``) joins digits on both
    sides, and MidNumLet (``. ' ’ ‘ ․``) joins either: ``U.S.A``, ``can't``, ``3.14``, ``1,000``,
    ``1;2`` stay one token; ``a.1`` or ``end.`` do not;
  - each Han or Hiragana character is a token; runs of Katakana, and of South-East Asian scripts
    (Thai, Lao, Myanmar, Khmer, Tai...), are tokens; emoji (Extended_Pictographic, e.g. ``©``,
    ``®``, ``™``, with modifiers and ZWJ sequences) and regional-indicator pairs are tokens;
    anything else separates tokens.

  Known approximations (checked against an exact port of Lucene's JFlex grammar on Unicode
  word-break properties: identical tokens on every scifact, vaswani and cranfield doc and query,
  emoji apart, which that port leaves out): Hebrew quote rules and emoji tag/keycap sequences are
  not modelled, at most one combining mark is looked through before a joiner, Tangut/Nushu count
  as letters, and lengths count code points, not UTF-16 units. Character data is Python's
  (``unicodedata.unidata_version``).
* EnglishPossessiveFilter: a trailing ``'s`` / ``’s`` / ``＇s`` is stripped.
* Lower-casing is per character like Java's ``Character.toLowerCase`` (no final-sigma rule).
* Stop words: Lucene's ``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`` (33 words), a custom list, or none.
* Stemming: ``"porter"`` is exactly Lucene's ``PorterStemmer`` (PyStemmer's Snowball "porter"
  plus a port of Lucene's class for the words where they differ, see :func:`lucene_porter`);
  ``"english"`` is Snowball's Porter2; ``"none"`` keeps the words.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

import Stemmer

from irbench.errors import ConfigError

__all__ = ["LUCENE_STOP_WORDS", "MAX_TOKEN_LENGTH", "Analyzer", "lucene_porter", "tokenize"]

#: ``org.apache.lucene.analysis.en.EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``.
LUCENE_STOP_WORDS: frozenset[str] = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)

#: ``StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH``: longer tokens are chopped at this length.
MAX_TOKEN_LENGTH = 255

STEMMERS = ("porter", "english", "none")

# UAX#29 word-break punctuation (Unicode 14).
_MID_LETTER = "\u003a\u00b7\u0387\u055f\u05f4\u2027\ufe13\ufe55\uff1a"
_MID_NUM_LET = "\u002e\u2018\u2019\u2024\ufe52\uff07\uff0e\u0027"  # incl. Single_Quote
_MID_NUM = "\u002c\u003b\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe50\ufe54\uff0c\uff1b"
_EXTEND_NUM_LET = "\u005f\u202f\u203f\u2040\u2054\ufe33\ufe34\ufe4d\ufe4e\ufe4f\uff3f"

_POSSESSIVE_QUOTES = ("'", "\u2019", "\uff07")


class _Ranges:
    """A set of code points given as inclusive ranges (``cp in ranges`` by bisection)."""

    def __init__(self, *pairs: tuple[int, int]):
        self.pairs = sorted(pairs)
        self.starts = [lo for lo, _ in self.pairs]

    def __contains__(self, cp: int) -> bool:
        i = bisect.bisect_right(self.starts, cp) - 1
        return i >= 0 and cp <= self.pairs[i][1]


# Script blocks with their own token rules.
_HAN = _Ranges(
    (0x2E80, 0x2FDF), (0x3005, 0x3005), (0x3007, 0x3007), (0x3021, 0x3029), (0x3038, 0x303B),
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3FFFF),
)  # fmt: skip
_HIRAGANA = _Ranges((0x3041, 0x3096), (0x309D, 0x309F), (0x1B001, 0x1B11F), (0x1F200, 0x1F200))
_KATAKANA = _Ranges(
    (0x3031, 0x3035), (0x309B, 0x309C), (0x30A0, 0x30FA), (0x30FC, 0x30FF), (0x31F0, 0x31FF),
    (0x32D0, 0x32FE), (0x3300, 0x3357), (0xFF66, 0xFF9D), (0x1B000, 0x1B000),
)  # fmt: skip
_SOUTH_EAST_ASIAN = _Ranges(
    (0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x1950, 0x19DF), (0x1A20, 0x1AAF),
    (0xA9E0, 0xA9FF), (0xAA60, 0xAADF), (0x11700, 0x1174F),
)  # fmt: skip
# Symbols and punctuation that UAX#29 counts as letters (ALetter), e.g. circled letters.
_EXTRA_LETTERS = _Ranges(
    (0x00B8, 0x00B8), (0x02C2, 0x02C5), (0x02D2, 0x02D7), (0x02DE, 0x02DF), (0x02E5, 0x02EB),
    (0x02ED, 0x02ED), (0x02EF, 0x02FF), (0x055A, 0x055C), (0x055E, 0x055E), (0x058A, 0x058A),
    (0x05F3, 0x05F3), (0x070F, 0x070F), (0x24B6, 0x24E9), (0xA708, 0xA716), (0xA720, 0xA721),
    (0xA789, 0xA78A), (0xAB5B, 0xAB5B), (0x1F130, 0x1F149), (0x1F150, 0x1F169), (0x1F170, 0x1F189),
)  # fmt: skip
# Lucene's EMOJI token characters: Extended_Pictographic plus other Emoji (Unicode 16 emoji data).
_EMOJI = _Ranges(
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA), (0x231A, 0x231B), (0x2328, 0x2328),
    (0x23CF, 0x23CF), (0x23E9, 0x23F3), (0x23F8, 0x23FA), (0x24C2, 0x24C2), (0x25AA, 0x25AB),
    (0x25B6, 0x25B6), (0x25C0, 0x25C0), (0x25FB, 0x25FE), (0x2600, 0x2604), (0x260E, 0x260E),
    (0x2611, 0x2611), (0x2614, 0x2615), (0x2618, 0x2618), (0x261D, 0x261D), (0x2620, 0x2620),
    (0x2622, 0x2623), (0x2626, 0x2626), (0x262A, 0x262A), (0x262E, 0x262F), (0x2638, 0x263A),
    (0x2640, 0x2640), (0x2642, 0x2642), (0x2648, 0x2653), (0x265F, 0x2660), (0x2663, 0x2663),
    (0x2665, 0x2666), (0x2668, 0x2668), (0x267B, 0x267B), (0x267E, 0x267F), (0x2692, 0x2697),
    (0x2699, 0x2699), (0x269B, 0x269C), (0x26A0, 0x26A1), (0x26A7, 0x26A7), (0x26AA, 0x26AB),
    (0x26B0, 0x26B1), (0x26BD, 0x26BE), (0x26C4, 0x26C5), (0x26C8, 0x26C8), (0x26CE, 0x26CF),
    (0x26D1, 0x26D1), (0x26D3, 0x26D4), (0x26E9, 0x26EA), (0x26F0, 0x26F5), (0x26F7, 0x26FA),
    (0x26FD, 0x26FD), (0x2702, 0x2702), (0x2705, 0x2705), (0x2708, 0x270D), (0x270F, 0x270F),
    (0x2712, 0x2712), (0x2714, 0x2714), (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721),
    (0x2728, 0x2728), (0x2733, 0x2734), (0x2744, 0x2744), (0x2747, 0x2747), (0x274C, 0x274C),
    (0x274E, 0x274E), (0x2753, 0x2755), (0x2757, 0x2757), (0x2763, 0x2764), (0x2795, 0x2797),
    (0x27A1, 0x27A1), (0x27B0, 0x27B0), (0x27BF, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B07),
    (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D),
    (0x3297, 0x3297), (0x3299, 0x3299), (0x1F004, 0x1F004), (0x1F02C, 0x1F02F),
    (0x1F094, 0x1F09F), (0x1F0AF, 0x1F0B0), (0x1F0C0, 0x1F0C0), (0x1F0CF, 0x1F0D0),
    (0x1F0F6, 0x1F0FF), (0x1F170, 0x1F171), (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E),
    (0x1F191, 0x1F19A), (0x1F1AE, 0x1F1E5), (0x1F201, 0x1F20F), (0x1F21A, 0x1F21A),
    (0x1F22F, 0x1F22F), (0x1F232, 0x1F23A), (0x1F23C, 0x1F23F), (0x1F249, 0x1F25F),
    (0x1F266, 0x1F321), (0x1F324, 0x1F393), (0x1F396, 0x1F397), (0x1F399, 0x1F39B),
    (0x1F39E, 0x1F3F0), (0x1F3F3, 0x1F3F5), (0x1F3F7, 0x1F3FA), (0x1F400, 0x1F4FD),
    (0x1F4FF, 0x1F53D), (0x1F549, 0x1F54E), (0x1F550, 0x1F567), (0x1F56F, 0x1F570),
    (0x1F573, 0x1F57A), (0x1F587, 0x1F587), (0x1F58A, 0x1F58D), (0x1F590, 0x1F590),
    (0x1F595, 0x1F596), (0x1F5A4, 0x1F5A5), (0x1F5A8, 0x1F5A8), (0x1F5B1, 0x1F5B2),
    (0x1F5BC, 0x1F5BC), (0x1F5C2, 0x1F5C4), (0x1F5D1, 0x1F5D3), (0x1F5DC, 0x1F5DE),
    (0x1F5E1, 0x1F5E1), (0x1F5E3, 0x1F5E3), (0x1F5E8, 0x1F5E8), (0x1F5EF, 0x1F5EF),
    (0x1F5F3, 0x1F5F3), (0x1F5FA, 0x1F64F), (0x1F680, 0x1F6C5), (0x1F6CB, 0x1F6D2),
    (0x1F6D5, 0x1F6E5), (0x1F6E9, 0x1F6E9), (0x1F6EB, 0x1F6F0), (0x1F6F3, 0x1F6FF),
    (0x1F7DA, 0x1F7FF), (0x1F80C, 0x1F80F), (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F),
    (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8AF), (0x1F8BC, 0x1F8BF), (0x1F8C2, 0x1F8CF),
    (0x1F8D9, 0x1F8FF), (0x1F90C, 0x1F93A), (0x1F93C, 0x1F945), (0x1F947, 0x1F9FF),
    (0x1FA58, 0x1FA5F), (0x1FA6E, 0x1FAFF), (0x1FC00, 0x1FFFD),
)  # fmt: skip
_EMOJI_MODIFIERS = (0x1F3FB, 0x1F3FF)
_REGIONAL_INDICATORS = (0x1F1E6, 0x1F1FF)


def _char_class(cps: Iterable[int]) -> str:
    """A regex character-class body for a set of code points, as compact ranges."""
    out: list[str] = []
    run_start = prev = None
    for cp in sorted(cps):
        if prev is not None and cp == prev + 1:
            prev = cp
            continue
        if run_start is not None:
            out.append(_range(run_start, prev))
        run_start = prev = cp
    if run_start is not None:
        out.append(_range(run_start, prev))
    return "".join(out)


def _range(lo: int, hi: int) -> str:
    return f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}"


@functools.cache
def _token_regex(max_cp: int = 0x10FFFF) -> re.Pattern[str]:
    """Compile the tokenizer regex for text whose code points are all <= ``max_cp``.

    Classes are derived once per process from unicodedata. Python's ``re`` tests characters
    outside the BMP against a linear list of ranges, so ASCII text uses the ``0x7F`` pattern and
    BMP text the ``0xFFFF`` one, both much faster than the full pattern.
    """
    letters, digits, extend, katakana, sea, han, emoji = [], [], [], [], [], [], []
    special = set(_MID_LETTER + _MID_NUM_LET + _MID_NUM + _EXTEND_NUM_LET)
    for cp in range(max_cp + 1):
        ch = chr(cp)
        if ch in special:
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cn", "Co", "Cs") and cp not in _EMOJI:
            continue
        major = cat[0]
        if major not in "LMN" and cat not in ("Cf", "Sk") and cp in _EMOJI:
            emoji.append(cp)
        elif major in "LMN" or cat in ("Cf", "So", "Sk") or cp in _EXTRA_LETTERS:
            if cp in _HAN or cp in _HIRAGANA:
                if major == "L" or cat in ("Nl", "So"):
                    han.append(cp)
                elif major == "M" or cat == "Cf":
                    extend.append(cp)
            elif cp in _KATAKANA and (major == "L" or cat in ("Sk", "So")):
                katakana.append(cp)
            elif cp in _SOUTH_EAST_ASIAN and major in "LM":
                sea.append(cp)
            elif cat == "Nd":
                digits.append(cp)
            elif major == "L" or cat == "Nl" or cp in _EXTRA_LETTERS:
                letters.append(cp)
            elif (major == "M" or cat == "Cf") and cp not in (0x200B, 0x200D):
                extend.append(cp)
            elif _EMOJI_MODIFIERS[0] <= cp <= _EMOJI_MODIFIERS[1]:
                extend.append(cp)
    a, n, xz = _char_class(letters), _char_class(digits), _char_class(extend)
    x = xz + "\\u200d" if max_cp >= 0x200D else xz  # Extend | Format | ZWJ
    k, s, h, e = _char_class(katakana), _char_class(sea), _char_class(han), _char_class(emoji)
    u = _char_class(ord(c) for c in _EXTEND_NUM_LET if ord(c) <= max_cp)
    ml = _char_class(ord(c) for c in _MID_LETTER + _MID_NUM_LET if ord(c) <= max_cp)
    mn = _char_class(ord(c) for c in _MID_NUM + _MID_NUM_LET if ord(c) <= max_cp)
    xs = f"[{x}]*" if x else ""  # WB4: extend/format characters never break
    xzs = f"[{xz}]*" if xz else ""
    after_letter = f"(?:(?<=[{a}])|(?<=[{a}][{x}]))" if x else f"(?<=[{a}])"
    after_digit = f"(?:(?<=[{n}])|(?<=[{n}][{x}]))" if x else f"(?<=[{n}])"
    # a run of letters/digits (WB5, WB8-10) with WB6/7 and WB11/12 joiners
    alnum = (
        f"[{a}{n}][{a}{n}{x}]*"
        f"(?:(?:{after_letter}[{ml}]{xs}(?=[{a}])|{after_digit}[{mn}]{xs}(?=[{n}]))"
        f"[{a}{n}{x}]+)*"
    )
    unit = f"(?:{alnum}|[{k}][{k}{x}]*)" if k else alnum  # WB13: katakana runs
    enl = f"(?:[{u}]{xs})"
    word = f"{enl}*{unit}(?:{enl}+{unit})*{enl}*"  # WB13a/b: ExtendNumLet joins all of them
    alternatives = [word]
    if s:
        alternatives.append(f"[{s}][{s}{x}]*")
    if h:
        alternatives.append(f"[{h}]{xs}")
    if e:
        alternatives.append(f"[{e}]{xzs}(?:\\u200d[{e}]{xzs})*")
    if max_cp > 0xFFFF:
        ri = _range(*_REGIONAL_INDICATORS)
        alternatives.append(f"[{ri}][{ri}]")
    return re.compile("|".join(f"(?:{alt})" for alt in alternatives))


def _java_lower(text: str) -> str:
    """``str.lower`` minus the two context rules Java's per-character lower-casing lacks."""
    if "\u0130" in text:  # İ -> i (Python gives i + combining dot)
        text = text.replace("\u0130", "i")
    if "\u03a3" in text:  # Σ -> σ always (Python picks ς at word ends)
        text = text.replace("\u03a3", "\u03c3")
    return text.lower()


def _chop(pattern: re.Pattern[str], token: str) -> list[str]:
    """Re-scan an over-long token with a 255-character window, as Lucene's scanner buffer does."""
    out: list[str] = []
    pos, end = 0, len(token)
    while pos < end:
        m = pattern.search(token, pos, min(pos + MAX_TOKEN_LENGTH, end))
        if m is None:
            # the window holds no complete token: skip past it
            pos += MAX_TOKEN_LENGTH
            continue
        out.append(m.group())
        pos = m.end()
    return out


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _pattern_for(text: str) -> re.Pattern[str]:
    if text.isascii():
        return _token_regex(0x7F)
    if _ASTRAL.search(text) is None:
        return _token_regex(0xFFFF)
    return _token_regex()


def _scan(text: str) -> list[str]:
    """StandardTokenizer tokens of ``text`` as it is (no case change)."""
    pattern = _pattern_for(text)
    tokens = pattern.findall(text)
    if len(text) > MAX_TOKEN_LENGTH and tokens and max(map(len, tokens)) > MAX_TOKEN_LENGTH:
        tokens = [
            c for t in tokens for c in (_chop(pattern, t) if len(t) > MAX_TOKEN_LENGTH else (t,))
        ]
    return tokens


def tokenize(text: str) -> list[str]:
    """Lower-cased StandardTokenizer tokens of ``text`` (no possessive, stop or stem step)."""
    return _scan(_java_lower(text))


# -- Lucene's PorterStemmer ------------------------------------------------------------------------
# Snowball's "porter" (PyStemmer) implements the published algorithm; Lucene's PorterStemmer is
# Porter's ANSI C release, which departs from it in step 2: "bli" -> "ble" (not "abli" -> "able")
# and an extra "logi" -> "log"; and in step 1b it undoubles any double consonant but l, s, z
# (Snowball only bb dd ff gg mm nn pp rr tt). Words that can reach those rules (containing
# bli/bly/logi/logy or another double consonant) go through this faithful port of Lucene's
# class; all others through PyStemmer, which agrees with Lucene on them (checked against the
# Java class on the scifact, vaswani and cranfield vocabularies plus 600k synthetic words).
_LUCENE_PORTER_ONLY = re.compile(r"bl[iy]|log[iy]|([^aeioubdfgmnprtlsz])\1")

_STEP3 = {
    "a": (("ational", "ate"), ("tional", "tion")),
    "c": (("enci", "ence"), ("anci", "ance")),
    "e": (("izer", "ize"),),
    "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
    "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
    "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
    "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
    "g": (("logi", "log"),),
}
_STEP4 = {
    "e": (("icate", "ic"), ("ative", ""), ("alize", "al")),
    "i": (("iciti", "ic"),),
    "l": (("ical", "ic"), ("ful", "")),
    "s": (("ness", ""),),
}
_STEP5 = {
    "a": ("al",), "c": ("ance", "ence"), "e": ("er",), "i": ("ic",), "l": ("able", "ible"),
    "n": ("ant", "ement", "ment", "ent"), "o": ("ion", "ou"), "s": ("ism",), "t": ("ate", "iti"),
    "u": ("ous",), "v": ("ive",), "z": ("ize",),
}  # fmt: skip


def lucene_porter(word: str) -> str:
    """``org.apache.lucene.analysis.en.PorterStemmer.stem`` (words of 1-2 chars are kept)."""
    b = list(word)
    k = len(b) - 1
    if k <= 1:
        return word

    def cons(i: int) -> bool:
        c = b[i]
        if c in "aeiou":
            return False
        if c == "y":
            return True if i == 0 else not cons(i - 1)
        return True

    def m(j: int) -> int:  # consonant sequences in b[0..j]
        n, i = 0, 0
        while True:
            if i > j:
                return n
            if not cons(i):
                break
            i += 1
        i += 1
        while True:
            while True:
                if i > j:
                    return n
                if cons(i):
                    break
                i += 1
            i += 1
            n += 1
            while True:
                if i > j:
                    return n
                if not cons(i):
                    break
                i += 1
            i += 1

    def vowel_in(j: int) -> bool:
        return any(not cons(i) for i in range(j + 1))

    def doublec(j: int) -> bool:
        return j >= 1 and b[j] == b[j - 1] and cons(j)

    def cvc(i: int) -> bool:
        return i >= 2 and cons(i) and not cons(i - 1) and cons(i - 2) and b[i] not in "wxy"

    def ends(s: str) -> int:  # j (end of the stem before s), or -2 when b[..k] lacks the suffix
        o = k - len(s) + 1
        if o < 0 or "".join(b[o : k + 1]) != s:
            return -2
        return k - len(s)

    def setto(j: int, s: str) -> int:
        b[j + 1 : j + 1 + len(s)] = list(s)
        return j + len(s)

    # step 1: plurals, -ed, -ing
    if b[k] == "s":
        if ends("sses") != -2:
            k -= 2
        elif (j := ends("ies")) != -2:
            k = setto(j, "i")
        elif b[k - 1] != "s":
            k -= 1
    if (j := ends("eed")) != -2:
        if m(j) > 0:
            k -= 1
    elif ((j := ends("ed")) != -2 or (j := ends("ing")) != -2) and vowel_in(j):
        k = j
        if (j := ends("at")) != -2:
            k = setto(j, "ate")
        elif (j := ends("bl")) != -2:
            k = setto(j, "ble")
        elif (j := ends("iz")) != -2:
            k = setto(j, "ize")
        elif doublec(k):
            if b[k] not in "lsz":
                k -= 1
        elif m(k) == 1 and cvc(k):
            k = setto(k, "e")
    # step 2: y -> i
    if (j := ends("y")) != -2 and vowel_in(j):
        b[k] = "i"
    # steps 3 and 4: double suffixes, -ic-, -full, -ness
    for table, offset in ((_STEP3, 1), (_STEP4, 0)):
        if k - offset < 0:
            continue
        for suffix, repl in table.get(b[k - offset], ()):
            if (j := ends(suffix)) != -2:
                if m(j) > 0:
                    k = setto(j, repl)
                break
    # step 5: -ant, -ence... in <c>vcvc<v>
    if k >= 1:
        for suffix in _STEP5.get(b[k - 1], ()):
            if (j := ends(suffix)) != -2:
                if suffix == "ion" and not (j >= 0 and b[j] in "st"):
                    continue
                if m(j) > 1:
                    k = j
                break
    # step 6: final -e, -ll (m measured up to the original end, as Lucene's j = k)
    j = k
    if b[k] == "e":
        a = m(j)
        if a > 1 or (a == 1 and not cvc(k - 1)):
            k -= 1
    if b[k] == "l" and doublec(k) and m(j) > 1:
        k -= 1
    return "".join(b[: k + 1])


class Analyzer:
    """Lucene-like English analyzer: ``Analyzer()("The U.S.A's cats")`` -> ``['u.s.a', 'cat']``.

    ``stemmer``: ``"porter"`` | ``"english"`` (Porter2) | ``"none"``; ``stopwords``: ``"lucene"``
    (33 words) | ``"none"`` | an iterable of words (matched after lower-casing);
    ``lowercase=False`` keeps case (stop words and stemming then see the original case).
    A per-instance cache maps each raw token to its term (or to nothing, for stop words); it is
    cleared when it holds more than ``cache_size`` entries. Instances pickle without the cache.
    """

    def __init__(
        self,
        stemmer: str = "porter",
        stopwords: str | Iterable[str] | None = "lucene",
        lowercase: bool = True,
        cache_size: int = 1 << 22,
    ):
        if stemmer not in STEMMERS:
            raise ConfigError(
                f"encoder.stemmer: unknown stemmer {stemmer!r}; use one of {STEMMERS}"
            )
        self.stemmer = stemmer
        if stopwords is None or stopwords == "none":
            self.stopwords: frozenset[str] = frozenset()
            self.stopwords_name = "none"
        elif stopwords == "lucene":
            self.stopwords = LUCENE_STOP_WORDS
            self.stopwords_name = "lucene"
        elif isinstance(stopwords, str):
            raise ConfigError(
                f"encoder.stopwords: unknown value {stopwords!r}; use 'lucene', 'none' or a list"
            )
        else:
            words = [str(w) for w in stopwords]
            self.stopwords = frozenset(w.lower() for w in words) if lowercase else frozenset(words)
            self.stopwords_name = "list"
        self.lowercase = bool(lowercase)
        self.cache_size = int(cache_size)
        self._init_runtime()

    # -- pickling: drop the compiled stemmer and the cache ---------------------------------------
    def _init_runtime(self) -> None:
        self._stemmer = None if self.stemmer == "none" else Stemmer.Stemmer(self.stemmer)
        self._cache: dict[str, str | None] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_stemmer", "_cache"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def config(self) -> dict[str, Any]:
        """The settings that change the terms (for cache keys)."""
        stop: Any = self.stopwords_name
        if stop == "list":
            stop = sorted(self.stopwords)
        return {"stemmer": self.stemmer, "stopwords": stop, "lowercase": self.lowercase}

    def __repr__(self) -> str:
        return (
            f"Analyzer(stemmer={self.stemmer!r}, stopwords={self.stopwords_name!r}, "
            f"lowercase={self.lowercase})"
        )

    # -- analysis --------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """StandardTokenizer tokens (lower-cased when ``lowercase``), before the filters."""
        return _scan(_java_lower(text) if self.lowercase else text)

    def _filter(self, tokens: Iterable[str]) -> list[str | None]:
        """Possessive + stop filter; returns the pre-stem word or None (dropped)."""
        out: list[str | None] = []
        stop = self.stopwords
        for t in tokens:
            if len(t) >= 2 and t[-1] in "sS" and t[-2] in _POSSESSIVE_QUOTES:
                t = t[:-2]
            out.append(None if not t or t in stop else t)
        return out

    def _fill(self, raw: Iterable[str]) -> None:
        """Analyse the raw tokens missing from the cache (``stemWords`` on them all at once)."""
        cache = self._cache
        raw = list(dict.fromkeys(t for t in raw if t not in cache))
        if not raw:
            return
        if len(cache) + len(raw) > self.cache_size:
            cache.clear()
        words = self._filter(raw)
        if self._stemmer is None:
            cache.update(zip(raw, words, strict=True))
            return
        todo: list[tuple[str, str]] = []
        for r, w in zip(raw, words, strict=True):
            if w is None:
                cache[r] = None
            elif self.stemmer == "porter" and (len(w) <= 2 or _LUCENE_PORTER_ONLY.search(w)):
                cache[r] = lucene_porter(w)  # Lucene's own rules (see lucene_porter)
            else:
                todo.append((r, w))
        stems = self._stemmer.stemWords([w for _, w in todo])
        cache.update(zip([r for r, _ in todo], stems, strict=True))

    def __call__(self, text: str) -> list[str]:
        """Terms of one text, in order (stop words removed)."""
        tokens = self.tokenize(text)
        self._fill(tokens)
        return [t for t in map(self._cache.__getitem__, tokens) if t is not None]

    def analyze_many(self, texts: Iterable[str]) -> list[list[str]]:
        """Terms of many texts; unique tokens are stemmed once with ``stemWords``."""
        token_lists = [self.tokenize(t) for t in texts]
        seen: set[str] = set()
        for tokens in token_lists:
            seen.update(tokens)
        self._fill(seen)  # every token is now cached (a clear happens before filling)
        get = self._cache.__getitem__
        return [[t for t in map(get, tokens) if t is not None] for tokens in token_lists]
