"""The macros of Stanford's PTBTokenizer lexer (CoreNLP 3.4.1, the jar coco-caption runs), PTBLexer.flex, under
their names there, as Python regular expressions for `captioner.metrics.ptb`.

The lexer is caseless for literal text only, and only in ASCII: (?ai:...) marks that text, character classes keep
their case.
"""
from __future__ import annotations

import re
from collections.abc import Callable


def _bmp_class(predicate: Callable[[str], bool]) -> str:
    """The characters of the Basic Multilingual Plane for which `predicate` holds, as the inside of a regex class.

    The lexer reads UTF-16 code units: a character beyond the BMP reaches it as two surrogates, in no letter or
    digit class.
    """
    ranges, start = [], None
    for code in range(0x10001):
        inside = code < 0x10000 and predicate(chr(code))
        if inside and start is None:
            start = code
        elif not inside and start is not None:
            ranges.append(re.escape(chr(start)) + (f"-{re.escape(chr(code - 1))}" if code - 1 > start else ""))
            start = None
    return "".join(ranges)


# The lexer's [:letter:] (ALPHA) and [:digit:] (DIGITS) are Java 8's, of Unicode 6.2: they hold none of the letters
# and digits Unicode added since, and still hold U+1885 and U+1886.
_AFTER_UNICODE_6_2 = re.compile(
    "[\u037f\u0528-\u052f\u0560\u0588\u05ef\u0860-\u086a\u0870-\u0887\u0889-\u088e\u08a1\u08ad-\u08c9\u0978\u0980"
    "\u09fc\u0af9\u0c34\u0c5a\u0c5d\u0c80\u0cdd\u0d04\u0d54-\u0d56\u0d5f\u0de6-\u0def\u0e86\u0e89\u0e8c\u0e8e-\u0e93"
    "\u0e98\u0ea0\u0ea8\u0ea9\u0eac\u13f5\u13f8-\u13fd\u16f1-\u16f8\u170d\u171f\u1878\u191d\u191e\u19b0-\u19c0\u19c8"
    "\u19c9\u1b4c\u1c80-\u1c88\u1c90-\u1cba\u1cbd-\u1cbf\u1cf2\u1cf3\u1cfa\u2c2f\u2c5f\u312e\u312f\u31bb-\u31bf"
    "\u4db6-\u4dbf\u9fcd-\u9fff\ua698-\ua69d\ua78f\ua794-\ua79f\ua7ab-\ua7ca\ua7d0\ua7d1\ua7d3\ua7d5-\ua7d9"
    "\ua7f2-\ua7f7\ua8fd\ua8fe\ua9e0-\ua9e4\ua9e6-\ua9fe\uaa7e\uaa7f\uab30-\uab5a\uab5c-\uab69\uab70-\uabbf]"
)
ALPHA = _bmp_class(lambda char: char.isalpha() and not _AFTER_UNICODE_6_2.match(char) or char in "\u1885\u1886")
DIGITS = _bmp_class(lambda char: char.isdecimal() and not _AFTER_UNICODE_6_2.match(char))

SPACE = r"[ \t\xa0\u2000-\u200a\u3000]"
_NEWLINE = r"(?:\r?\n|[\r\u2028\u2029\x0b\x0c\x85])"
SPACENL = rf"(?:{SPACE}|{_NEWLINE})"
_NAME = r"[A-Za-z][A-Za-z0-9_:.\-]*"
SGML = (
    rf"<(?:[!?][A-Za-z\-][^>\r\n]*|{_NAME}(?:[ ]+(?:{_NAME}[ ]*=[ ]*(?:'[^']*'|\"[^\"]*\")|{_NAME}))*[ ]*/?"
    rf"|/{_NAME})[ ]*>"
)
_SPLET = r"&[aeiouAEIOU](?ai:acute|grave|uml);"
LETTER_CHARS = (
    ALPHA + "\xad\u0237-\u024f\u02c2-\u02c5\u02d2-\u02df\u02e5-\u02ff\u0300-\u036f\u0370-\u037d\u0384\u0385\u03cf"
    "\u03f6\u03fc-\u03ff\u0483-\u0487\u04cf\u04f6-\u04ff\u0510-\u0525\u055a-\u055f\u0591-\u05bd\u05bf\u05c1\u05c2"
    "\u05c4\u05c5\u05c7\u0615-\u061a\u063b-\u063f\u064b-\u065e\u0670\u06d6-\u06ef\u06fa-\u06ff\u070f\u0711"
    "\u0730-\u074f\u0750-\u077f\u07a6-\u07b1\u07ca-\u07f5\u07fa\u0900-\u0903\u093c\u093e-\u094e\u0951-\u0955"
    "\u0962\u0963\u0981-\u0983\u09bc-\u09c4\u09c7\u09c8\u09cb-\u09cd\u09d7\u09e2\u09e3\u0a01-\u0a03\u0a3c"
    "\u0a3e-\u0a4f\u0a81-\u0a83\u0abc-\u0acf\u0b82\u0bbe-\u0bc2\u0bc6-\u0bc8\u0bca-\u0bcd\u0c01-\u0c03"
    "\u0c3e-\u0c56\u0d3e-\u0d44\u0d46-\u0d48\u0e30-\u0e3a\u0e47-\u0e4e\u0eb1-\u0ebc\u0ec8-\u0ecd"
)
LETTER = rf"(?:[{LETTER_CHARS}]|{_SPLET})"
LETTER_OR_DIGIT = rf"(?:[{LETTER_CHARS}{DIGITS}]|{_SPLET})"
DIGIT = f"[{DIGITS}]"
WORD = rf"{LETTER}{LETTER_OR_DIGIT}*(?:[.!?]{LETTER}{LETTER_OR_DIGIT}*)*"
APOS = r"(?:['\x92\u2019]|(?ai:&apos;))"
APOSETCETERA = rf"(?:{APOS}|[`\x91\u2018\u201b])"
_THING_PART = rf"(?:[dDoOlL]{APOSETCETERA}[{ALPHA}{DIGITS}])?[{ALPHA}{DIGITS}]+"
THING = rf"{_THING_PART}(?:[\-_\u058a\u2010\u2011]{_THING_PART})*"
THINGA = r"[A-Z]+(?:(?:(?ai:&amp;)|[+&])[A-Z]+)+"
_SPECIAL_ACRO = r"(?ai:u\.s\.-(?:u\.k|u\.s\.s\.r)|(?:canada|sino|korean|eu|japan|non)-u\.s)"
ACRO = rf"{_SPECIAL_ACRO}|[A-Za-z](?:\.[A-Za-z])*"
HTHING = rf"[A-Za-z0-9][A-Za-z0-9.,\xad]*(?:-(?:(?:{_SPECIAL_ACRO}|[A-Za-z](?:\.[A-Za-z])+)\.|[A-Za-z0-9\xad]+))+"
REDAUX = rf"{APOS}(?:[msdMSD]|(?ai:re|ve|ll))"
SREDAUX = rf"[nN]{APOSETCETERA}[tT]"
INSENTP = r"[,;:\u3001]"
ABBREV1 = (
    r"(?:(?ai:jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec|mon|tues?|wed|thu|thurs|fri|ala|ariz|calif|colo|conn|ct"
    r"|dak|fla|ga|ind|kans?|ky|md|mich|minn|mo|mont|neb|nev|okla|penn|tenn|va|vt|wisc?|wyo|inc|cos?|corp|ltd|plc|rt"
    r"|bancorp|bhd|assn|univ|intl|sys|tel|est|ext|sq|jr|sr|bros|(?:ed|ph)\.d|blvd|rd|esq|etc|al|seq|bldg)"
    r"|A(?ai:z|rk)|D(?ai:el)|I(?ai:ll)|L(?ai:a)|M(?ai:ass|iss)|O(?ai:re)|P(?ai:a)|T(?ai:ex)|W(?ai:ash)"
    r"|(?ai:pp?t)[ye](?ai:s?))\."
)
ABBREV4 = (
    r"(?:(?ai:mrs?|ms|drs?|profs?|sens?|reps?|attys?|lt|col|gen|messrs|govs?|adm|rev|maj|sgt|cpl|pvt|capt|ste?|ave"
    r"|pres|lieut|hon|brig|co?mdr|pfc|spc|supts?|det|mt|ft|adj|adv|asst|assoc|ens|insp|mlle|mme|msgr|sfc|vs|alex|wm"
    rf"|jos|cie|a\.k\.a|cf|treas|ph|invt|elec|natl|dept)|M(?ai:iss)|(?ai:m)[ft](?ai:g)|{ACRO})"
)
# An acronym before one of these words ends a sentence; their first letter is case-sensitive.
SENTENCE_STARTS = (
    "About According Additionally After An A As At But Earlier He Her Here However If In It Last Many More Mr. Ms. "
    "Now Once One Other Our She Since So Some Such That The Their Then There These They This We When While What "
    "Yet You"
)
SENTEND = rf"{SPACENL}(?:{SPACENL}|[{_bmp_class(str.isupper)}]|{SGML})"
# ",-_" is a range, there as here.
SITE = (
    r"(?ai:www)\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4}"
    r"|(?:[^ \t\n\f\r\"`'<>|.!?(){},-_$]+\.)+(?ai:com|net|org|edu)"
)
URL_END = r"[^ \t\n\f\r\"<>|.!?(){},\-]"
MISCSYMBOL = (
    r"[+%&~\^|\\\xa6-\xa9\xac\xae\xaf\xb0-\xba\xd7\xf7\u0387\u05be\u05c0\u05c3\u05c6\u05f3\u05f4\u0600-\u0603"
    r"\u0606-\u060a\u060c\u0614\u061b\u061e\u066a\u066d\u0703-\u070d\u07f6-\u07f8\u0964\u0965\u0e4f\u1fbd\u2016"
    r"\u2017\u2020-\u2023\u2030-\u2038\u203b\u203e-\u2042\u2044\u207a-\u207f\u208a-\u208e\u2100-\u214f\u2190-\u21ff"
    r"\u2200-\u2bff\u3012\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]"
)
APOSTROPHES = "'\x92\u2019&"
