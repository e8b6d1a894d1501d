"""Caption metrics computed the way the COCO caption evaluation toolkit (coco-caption, pycocoevalcap) computes them.

The metric functions take parallel lists: `references[i]` holds the tokenized reference captions of image i and
`candidates[i]` its tokenized generated caption. `score` takes raw captions keyed by image id, as coco-caption does.
"""
from __future__ import annotations

import contextlib
import functools
import math
import re
import shutil
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence

import nltk
import numpy as np
from nltk.translate import meteor as nltk_meteor

from .names import METEOR

Tokens = Sequence[str]

COCO_METEOR = "coco-caption METEOR 1.5 (Java)"
NLTK_METEOR = "nltk"
METEOR_CHOICES = METEOR  # the one list, in captioner.names so the command line needs no nltk

# Stanford's PTBTokenizer (CoreNLP 3.4.1, the jar coco-caption runs) in pure Python: the rules of its JFlex lexer,
# PTBLexer.flex, in their order, their macros under their names there. The lexer is caseless for literal text only,
# and only in ASCII: (?ai:...) marks that text, character classes keep their case.


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


# The lexer's [:letter:] (_ALPHA) and [:digit:] (_DIGITS) are Java 8's, of Unicode 6.2: they hold none of the letters
# and digits Unicode added since, and still hold U+1885 and U+1886.
_AFTER_UNICODE_6_2 = re.compile(
    "[\u037f\u0528-\u052f\u0560\u0588\u05ef\u0860-\u086a\u0870-\u0887\u0889-\u088e\u08a1\u08ad-\u08c9\u0978\u0980"
    "\u09fc\u0af9\u0c34\u0c5a\u0c5d\u0c80\u0cdd\u0d04\u0d54-\u0d56\u0d5f\u0de6-\u0def\u0e86\u0e89\u0e8c\u0e8e-\u0e93"
    "\u0e98\u0ea0\u0ea8\u0ea9\u0eac\u13f5\u13f8-\u13fd\u16f1-\u16f8\u170d\u171f\u1878\u191d\u191e\u19b0-\u19c0\u19c8"
    "\u19c9\u1b4c\u1c80-\u1c88\u1c90-\u1cba\u1cbd-\u1cbf\u1cf2\u1cf3\u1cfa\u2c2f\u2c5f\u312e\u312f\u31bb-\u31bf"
    "\u4db6-\u4dbf\u9fcd-\u9fff\ua698-\ua69d\ua78f\ua794-\ua79f\ua7ab-\ua7ca\ua7d0\ua7d1\ua7d3\ua7d5-\ua7d9"
    "\ua7f2-\ua7f7\ua8fd\ua8fe\ua9e0-\ua9e4\ua9e6-\ua9fe\uaa7e\uaa7f\uab30-\uab5a\uab5c-\uab69\uab70-\uabbf]"
)
_ALPHA = _bmp_class(lambda char: char.isalpha() and not _AFTER_UNICODE_6_2.match(char) or char in "\u1885\u1886")
_DIGITS = _bmp_class(lambda char: char.isdecimal() and not _AFTER_UNICODE_6_2.match(char))

_SPACE = r"[ \t\xa0\u2000-\u200a\u3000]"
_NEWLINE = r"(?:\r?\n|[\r\u2028\u2029\x0b\x0c\x85])"
_SPACENL = rf"(?:{_SPACE}|{_NEWLINE})"
_NAME = r"[A-Za-z][A-Za-z0-9_:.\-]*"
_SGML = (
    rf"<(?:[!?][A-Za-z\-][^>\r\n]*|{_NAME}(?:[ ]+(?:{_NAME}[ ]*=[ ]*(?:'[^']*'|\"[^\"]*\")|{_NAME}))*[ ]*/?"
    rf"|/{_NAME})[ ]*>"
)
_SPLET = r"&[aeiouAEIOU](?ai:acute|grave|uml);"
_LETTER_CHARS = (
    _ALPHA + "\xad\u0237-\u024f\u02c2-\u02c5\u02d2-\u02df\u02e5-\u02ff\u0300-\u036f\u0370-\u037d\u0384\u0385\u03cf"
    "\u03f6\u03fc-\u03ff\u0483-\u0487\u04cf\u04f6-\u04ff\u0510-\u0525\u055a-\u055f\u0591-\u05bd\u05bf\u05c1\u05c2"
    "\u05c4\u05c5\u05c7\u0615-\u061a\u063b-\u063f\u064b-\u065e\u0670\u06d6-\u06ef\u06fa-\u06ff\u070f\u0711"
    "\u0730-\u074f\u0750-\u077f\u07a6-\u07b1\u07ca-\u07f5\u07fa\u0900-\u0903\u093c\u093e-\u094e\u0951-\u0955"
    "\u0962\u0963\u0981-\u0983\u09bc-\u09c4\u09c7\u09c8\u09cb-\u09cd\u09d7\u09e2\u09e3\u0a01-\u0a03\u0a3c"
    "\u0a3e-\u0a4f\u0a81-\u0a83\u0abc-\u0acf\u0b82\u0bbe-\u0bc2\u0bc6-\u0bc8\u0bca-\u0bcd\u0c01-\u0c03"
    "\u0c3e-\u0c56\u0d3e-\u0d44\u0d46-\u0d48\u0e30-\u0e3a\u0e47-\u0e4e\u0eb1-\u0ebc\u0ec8-\u0ecd"
)
_LETTER = rf"(?:[{_LETTER_CHARS}]|{_SPLET})"
_LETTER_OR_DIGIT = rf"(?:[{_LETTER_CHARS}{_DIGITS}]|{_SPLET})"
_DIGIT = f"[{_DIGITS}]"
_WORD = rf"{_LETTER}{_LETTER_OR_DIGIT}*(?:[.!?]{_LETTER}{_LETTER_OR_DIGIT}*)*"
_APOS = r"(?:['\x92\u2019]|(?ai:&apos;))"
_APOSETCETERA = rf"(?:{_APOS}|[`\x91\u2018\u201b])"
_THING_PART = rf"(?:[dDoOlL]{_APOSETCETERA}[{_ALPHA}{_DIGITS}])?[{_ALPHA}{_DIGITS}]+"
_THING = rf"{_THING_PART}(?:[\-_\u058a\u2010\u2011]{_THING_PART})*"
_THINGA = r"[A-Z]+(?:(?:(?ai:&amp;)|[+&])[A-Z]+)+"
_SPECIAL_ACRO = r"(?ai:u\.s\.-(?:u\.k|u\.s\.s\.r)|(?:canada|sino|korean|eu|japan|non)-u\.s)"
_ACRO = rf"{_SPECIAL_ACRO}|[A-Za-z](?:\.[A-Za-z])*"
_HTHING = rf"[A-Za-z0-9][A-Za-z0-9.,\xad]*(?:-(?:(?:{_SPECIAL_ACRO}|[A-Za-z](?:\.[A-Za-z])+)\.|[A-Za-z0-9\xad]+))+"
_REDAUX = rf"{_APOS}(?:[msdMSD]|(?ai:re|ve|ll))"
_SREDAUX = rf"[nN]{_APOSETCETERA}[tT]"
_INSENTP = r"[,;:\u3001]"
_ABBREV1 = (
    r"(?:(?ai:jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec|mon|tues?|wed|thu|thurs|fri|ala|ariz|calif|colo|conn|ct"
    r"|dak|fla|ga|ind|kans?|ky|md|mich|minn|mo|mont|neb|nev|okla|penn|tenn|va|vt|wisc?|wyo|inc|cos?|corp|ltd|plc|rt"
    r"|bancorp|bhd|assn|univ|intl|sys|tel|est|ext|sq|jr|sr|bros|(?:ed|ph)\.d|blvd|rd|esq|etc|al|seq|bldg)"
    r"|A(?ai:z|rk)|D(?ai:el)|I(?ai:ll)|L(?ai:a)|M(?ai:ass|iss)|O(?ai:re)|P(?ai:a)|T(?ai:ex)|W(?ai:ash)"
    r"|(?ai:pp?t)[ye](?ai:s?))\."
)
_ABBREV4 = (
    r"(?:(?ai:mrs?|ms|drs?|profs?|sens?|reps?|attys?|lt|col|gen|messrs|govs?|adm|rev|maj|sgt|cpl|pvt|capt|ste?|ave"
    r"|pres|lieut|hon|brig|co?mdr|pfc|spc|supts?|det|mt|ft|adj|adv|asst|assoc|ens|insp|mlle|mme|msgr|sfc|vs|alex|wm"
    rf"|jos|cie|a\.k\.a|cf|treas|ph|invt|elec|natl|dept)|M(?ai:iss)|(?ai:m)[ft](?ai:g)|{_ACRO})"
)
# An acronym before one of these words ends a sentence; their first letter is case-sensitive.
_SENTENCE_STARTS = (
    "About According Additionally After An A As At But Earlier He Her Here However If In It Last Many More Mr. Ms. "
    "Now Once One Other Our She Since So Some Such That The Their Then There These They This We When While What "
    "Yet You"
)
_SENTEND = rf"{_SPACENL}(?:{_SPACENL}|[{_bmp_class(str.isupper)}]|{_SGML})"
# ",-_" is a range, there as here.
_SITE = (
    r"(?ai:www)\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4}"
    r"|(?:[^ \t\n\f\r\"`'<>|.!?(){},-_$]+\.)+(?ai:com|net|org|edu)"
)
_URL_END = r"[^ \t\n\f\r\"<>|.!?(){},\-]"
_MISCSYMBOL = (
    r"[+%&~\^|\\\xa6-\xa9\xac\xae\xaf\xb0-\xba\xd7\xf7\u0387\u05be\u05c0\u05c3\u05c6\u05f3\u05f4\u0600-\u0603"
    r"\u0606-\u060a\u060c\u0614\u061b\u061e\u066a\u066d\u0703-\u070d\u07f6-\u07f8\u0964\u0965\u0e4f\u1fbd\u2016"
    r"\u2017\u2020-\u2023\u2030-\u2038\u203b\u203e-\u2042\u2044\u207a-\u207f\u208a-\u208e\u2100-\u214f\u2190-\u21ff"
    r"\u2200-\u2bff\u3012\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]"
)
_APOSTROPHES = "'\x92\u2019&"

_SINGLE_QUOTE = re.compile(r"&apos;|'")
_DOUBLE_QUOTE = re.compile(r'"|&quot;')
_TYPOGRAPHIC_QUOTES = str.maketrans(
    {"\x91": "`", "\u2018": "`", "\u201b": "`", "\u2039": "`", "\x92": "'", "\u2019": "'", "\u203a": "'",
     "\x93": "``", "\u201c": "``", "\xab": "``", "\x94": "''", "\u201d": "''", "\xbb": "''"}
)
_AMPERSAND = re.compile(r"(?ai:&amp;)")
_CURRENCY = str.maketrans({"\xa2": "cents", "\xa3": "#", "\x80": "$", "\xa4": "$", "\u20a0": "$", "\u20ac": "$"})
_FRACTIONS = str.maketrans({"\xbc": "1/4", "\xbd": "1/2", "\xbe": "3/4", "\u2153": "1/3", "\u2154": "2/3"})
_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
_PARENTHESES = str.maketrans({"(": "-LRB-", ")": "-RRB-"})


def _quotes(opening: bool) -> Callable[[str], str]:
    """LaTeX quotes; an ASCII quote opens or closes as the rule guessed."""
    single, double = ("`", "``") if opening else ("'", "''")
    return lambda text: _DOUBLE_QUOTE.sub(double, _SINGLE_QUOTE.sub(single, text)).translate(_TYPOGRAPHIC_QUOTES)


def _without_soft_hyphens(text: str) -> str:
    return text.replace("\xad", "") or "-"


def _ampersand(text: str) -> str:
    return _AMPERSAND.sub("&", text)


def _parentheses(text: str) -> str:
    return text.translate(_PARENTHESES)


def _nbsp(text: str) -> str:
    return text.replace(" ", "\xa0")


def _constant(token: str) -> Callable[[str], str]:
    return lambda text: token


def _skip(text: str) -> None:
    return None


def _push_back(count: int) -> Callable[[str], tuple[str, int]]:
    """The token loses its last characters, which the lexer reads again."""
    return lambda text: (text[:-count], len(text) - count)


def _reread_period(text: str) -> tuple[str, int]:
    """The token keeps its period, which the lexer also reads again as a token of its own."""
    return text, len(text) - 1


def _acronym(text: str) -> tuple[str, int]:
    """An acronym that ends a sentence: a single letter gives its period up, a longer one shares it."""
    return (text[:-1] if len(text) == 2 else text), len(text) - 1


def _rule(first: str | None, pattern: str, context: str | None = None, action: Callable = str) -> tuple:
    """A lexer rule: a class of the characters it can start with (None: any), its pattern, the trailing context that
    must follow (part of the match, so of its length, but not of the token), and what it makes of the text: a token,
    nothing, or a token and how many characters it took."""
    return first, f"({pattern})" + (f"(?:{context})" if context else ""), action


_RULES = [
    _rule("[cCfF]", r"[cC]\+\+|[cCfF]#"),
    _rule("[cC]", r"(?ai:cannot)", action=_push_back(3)),
    _rule("'", r"(?ai:'twas)", action=_push_back(3)),
    _rule("'", r"(?ai:'tis)", action=_push_back(2)),
    _rule("[gGlLwW]", r"(?ai:gonna|gotta|lemme|gimme|wanna)", action=_push_back(2)),
    _rule("<", _SGML, action=_nbsp),
    _rule("[&\x96\x97\u2013-\u2015]", r"&(?ai:mdash|ndash|md);|[\x96\x97\u2013-\u2015]", action=_constant("--")),
    _rule("&", r"(?ai:&amp;)", action=_ampersand),
    _rule("&", r"&(?ai:ht|tl|ur|lr|qc|ql|qr|odq|cdq|#[0-9]+);"),
    _rule(f"[{_LETTER_CHARS}&]", _WORD, _REDAUX, _without_soft_hyphens),
    _rule("[A-Za-z\xad]", r"[A-Za-z\xad]*[A-MO-Za-mo-z]\xad*", _SREDAUX, _without_soft_hyphens),
    _rule(f"[{_LETTER_CHARS}&]", _WORD, action=_without_soft_hyphens),
    _rule(
        f"[{_ALPHA}{_APOSTROPHES}]",
        rf"{_APOS}[nN]{_APOS}?|[A-HJ-XZn]{_APOSETCETERA}[{_ALPHA}]{{2,}}|[lLdDjJ]{_APOS}"
        rf"|(?ai:dunkin|somethin|ol){_APOS}|{_APOS}(?ai:em)|{_APOS}[2-9]0[sS]|{_APOS}(?ai:till?)"
        rf"|[{_ALPHA}]+[aeiouyAEIOUY]{_APOSETCETERA}[aeiouA-Z][{_ALPHA}]*|{_APOS}(?ai:cause)|(?ai:cont'd)\.?"
        rf"|(?ai:'twas|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)|[oO]{_APOSETCETERA}[oO]",
    ),
    _rule("[yY]", rf"[yY]{_APOS}", f"[{_ALPHA}]"),
    _rule("[hH]", rf"(?ai:https?://)[^ \t\n\f\r\"<>|(){{}}]+{_URL_END}"),
    # With a path the match reaches as far as any reading of the site allows, so that reading comes first.
    _rule(None, rf"(?:{_SITE})/[^ \t\n\f\r\"<>|()]+{_URL_END}|{_SITE}"),
    _rule(
        "[&<a-zA-Z0-9]",
        r"(?:(?ai:&lt;)|<)?[a-zA-Z0-9][^ \t\n\f\r\"<>|()\xa0{}]*@(?:[^ \t\n\f\r\"<>|(){}.\xa0]+\.)*"
        r"[^ \t\n\f\r\"<>|(){}.\xa0]+(?:(?ai:&gt;)|>)?",
    ),
    _rule("[@#]", rf"@[a-zA-Z_][a-zA-Z_0-9]*|#{_LETTER}+"),
    _rule(f"[{_APOSTROPHES}]", _REDAUX, "[^A-Za-z]", _quotes(opening=False)),
    _rule("[nN]", _SREDAUX, "[^A-Za-z]", _quotes(opening=False)),
    _rule(_DIGIT, rf"{_DIGIT}{{1,2}}[\-/]{_DIGIT}{{1,2}}[\-/]{_DIGIT}{{2,4}}"),
    _rule(
        rf"[\-+.:,\xad\u066b\u066c{_DIGITS}]", rf"[\-+]?(?:{_DIGIT}*(?:[.:,\xad\u066b\u066c]{_DIGIT}+)+|{_DIGIT}+)",
        action=_without_soft_hyphens,
    ),
    _rule(
        "[\u207a\u207b\u208a\u208b\u2070\xb9\xb2\xb3\u2074-\u2079\u2080-\u2089]",
        r"[\u207a\u207b\u208a\u208b]?(?:[\u2070\xb9\xb2\xb3\u2074-\u2079]+|[\u2080-\u2089]+)",
    ),
    _rule(_DIGIT, rf"(?:{_DIGIT}{{1,4}}[\- \xa0])?{_DIGIT}{{1,4}}(?:\\?/|\u2044){_DIGIT}{{1,4}}", action=_nbsp),
    _rule("[\xbc-\xbe\u2153-\u215e]", "[\xbc-\xbe\u2153-\u215e]", action=lambda text: text.translate(_FRACTIONS)),
    _rule(
        "[-cCpPaAsS]",
        rf"-(?ai:rrb|lrb|rcb|lcb|rsb|lsb)-|(?ai:c\.d\.s|pro-|anti-)|(?ai:s)(?:(?ai:&amp;)|&)(?ai:p-500|ls)"
        rf"|(?ai:cap){_APOS}(?ai:n)|(?ai:c){_APOS}(?ai:est)",
        action=_ampersand,
    ),
    _rule("[A-Za-z0-9]", r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}"),
    _rule("[A-Z$#]", r"[A-Z]*\$|#"),
    _rule(
        "[\xa2-\xa5\x80\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6]",
        "[\xa2-\xa5\x80\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6]",
        action=lambda text: text.translate(_CURRENCY),
    ),
    _rule(
        "[A-Za-z]",
        rf"(?:{_ACRO})\.",
        rf"{_SPACENL}+(?:{'|'.join(f'{word[0]}(?ai:{re.escape(word[1:])})' for word in _SENTENCE_STARTS.split())}"
        rf"|{_SGML}){_SPACENL}",
        _acronym,
    ),
    _rule("[A-Za-z]", r"(?ai:ca|figs?|prop|nos?|art|bldg|pp|op)\.", rf"{_SPACENL}?{_DIGIT}"),
    _rule("[pPcC]", r"(?ai:pt)[eyEY]\.|(?ai:co)\.", rf"{_SPACE}(?ai:ltd|lim)"),
    _rule("[A-Za-z]", _ABBREV1, _SENTEND, _reread_period),
    _rule("[A-Za-z]", _ABBREV1, r"(?s:..)"),
    _rule("[A-Za-z]", _ABBREV1, action=_reread_period),
    _rule("[A-Za-z]", rf"{_ABBREV4}\."),
    _rule("[A-Za-z]", _ABBREV4, _SPACE),
    _rule("[A-Za-z]", _ACRO, _SPACENL),
    _rule(f"[{_APOSTROPHES}]", rf"{_APOS}[0-9][0-9]", _SPACENL),
    _rule(
        f"[{_LETTER_CHARS}{_DIGITS}&]",
        rf"{_LETTER_OR_DIGIT}+(?:\.{_LETTER_OR_DIGIT}+)*\.(?ai:bat|bmp|c|class|cgi|cpp|dll|docx?|exe|gif|gz|h|html?"
        r"|jar|java|jpeg|jpg|mov|mp3|pdf|php|pl|png|ppt|ps|py|sql|tar|txt|wav|x|xml|zip)",
        rf"{_SPACENL}|[.?!,]",
    ),
    _rule(f"[{_LETTER_CHARS}&]", rf"{_WORD}\.", _INSENTP, _without_soft_hyphens),
    _rule(
        "[(+0-9]",
        r"(?:\([0-9]{2,3}\)[ \xa0]?|(?:\+\+?)?(?:[0-9]{2,4}[\- \xa0])?[0-9]{2,4}[\- \xa0])[0-9]{3,4}[\- \xa0]?"
        r"[0-9]{3,5}|(?:(?:\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}",
        action=lambda text: _parentheses(_nbsp(text)),
    ),
    _rule('["&]', r'"|(?ai:&quot;)', "[A-Za-z0-9$]", _quotes(opening=True)),
    _rule('["&]', r'"|(?ai:&quot;)', action=_quotes(opening=False)),
    _rule("[<&]", r"<|(?ai:&lt;)", action=_constant("<")),
    _rule("[>&]", r">|(?ai:&gt;)", action=_constant(">")),
    _rule("[<>:;=]", r"[<>]?[:;=][\-o*']?[()DPdpO\\{@|\[\]]", "[^A-Za-z0-9]", _parentheses),
    _rule(
        r"[\-^x=~<>'(]",
        r"[\^x=~<>]\.\[\^x=~<>\]|[\-\^x=~<>']_[\-\^x=~<>']|\([\-\^x=~<>'][_.]?[\-\^x=~<>']\)"
        r"|\([\^x=~<>']-[\^x=~<>'`]\)",
        action=_parentheses,
    ),
    _rule(r"[{}\[\]()]", r"[{}\[\]()]", action=_BRACKETS.get),
    _rule("-", "-+", action=lambda text: "--" if 3 <= len(text) <= 4 else text),
    _rule("[.\x85\u2026]", r"\.{3,5}|(?:\.[ \xa0]){2,4}\.|[\x85\u2026]", action=_constant("...")),
    _rule("[@#_]", "@+|#+|_+"),
    _rule(r"[*\\]", r"\*+|(?:\\\*){1,3}"),
    _rule(_INSENTP, _INSENTP),
    _rule("[?!]", "[?!]+"),
    _rule("[.\xa1\xbf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002=/]",
          "[.\xa1\xbf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002=/]"),
    _rule("[A-Za-z0-9]", rf"{_HTHING}\.", _INSENTP, _without_soft_hyphens),
    _rule("[A-Za-z0-9]", _HTHING, action=_without_soft_hyphens),
    _rule(f"[{_ALPHA}{_DIGITS}]", rf"{_THING}\.", _INSENTP),
    _rule(f"[{_ALPHA}{_DIGITS}]", _THING),
    _rule("[A-Z]", rf"{_THINGA}\.", _INSENTP, _ampersand),
    _rule("[A-Z]", _THINGA, action=_ampersand),
    _rule("'", "'", r"[A-Za-z][^ \t\n\r\xa0]", _quotes(opening=True)),
    _rule(f"[{_APOSTROPHES}]", _REDAUX, action=_quotes(opening=False)),
    _rule("[nN]", _SREDAUX, action=_quotes(opening=False)),
    _rule(
        f"[`\u2018-\u201f\x91-\x94\u2039\u203a\xab\xbb{_APOSTROPHES}]",
        rf"''|[`\u2018\u2019\u201a\u201b\u201c\u201d\x91\x92\x93\x94\u201e\u201f\u2039\u203a\xab\xbb]{{1,2}}|{_APOS}",
        action=_quotes(opening=False),
    ),
    _rule("[<>]", "<<|>>"),
    _rule(_MISCSYMBOL, _MISCSYMBOL),
    # The rest, spaces and newlines too, ends tokens and vanishes: Java drops the characters no rule takes (an
    # emoji, a control character).
    _rule(None, r"(?ai:&nbsp;)|(?s:.)", action=_skip),
]
# Compiled on first use: most captions need few of the rules.
_compiled = functools.cache(re.compile)
# What no rule can lengthen or split: a run of ASCII letters other than "cannot" and its kind, a comma, or a period
# that starts no ". . .", before a space or the end of the line; and the spaces and the newline between tokens.
_PLAIN = re.compile(r"(?!(?ai:cannot|gonna|gotta|lemme|gimme|wanna)[ \n])([A-Za-z]+|,|\.(?! \.))(?=[ \n])|[ \n]+")
# coco-caption's list. Its bracket entries ("-LRB-", ...) never match the lower-cased tokens, so brackets survive
# as "-lrb-", "-rrb-" and so on; they are left out here for that reason.
_PUNCTUATION = frozenset({"''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";"})


@functools.lru_cache(maxsize=4096)
def _rules_for(char: str) -> list[tuple[re.Pattern, Callable]]:
    """The compiled rules that can match text starting with `char`, in order."""
    return [
        (_compiled(pattern), action)
        for first, pattern, action in _RULES
        if first is None or _compiled(first).match(char)
    ]


def _lex(text: str) -> list[str]:
    """PTBLexer's tokens, as JFlex finds them: at each position the rule with the longest match, the earlier on ties."""
    tokens, position = [], 0
    while position < len(text):
        plain = _PLAIN.match(text, position)
        if plain:
            if plain[1]:
                tokens.append(plain[1])
            position = plain.end()
            continue
        longest, action = None, None
        for regex, rule_action in _rules_for(text[position]):
            match = regex.match(text, position)
            if match and (longest is None or match.end() > longest.end()):
                longest, action = match, rule_action
        result = action(longest[1])
        token, length = result if isinstance(result, tuple) else (result, len(longest[1]))
        if token is not None:
            tokens.append(token)
        position += length
    return tokens


def tokenize(caption: str) -> list[str]:
    """coco-caption's tokenization (Stanford PTBTokenizer, lower case, punctuation dropped) in pure Python.

    "A man's T-shirt (red)." -> ["a", "man", "'s", "t-shirt", "-lrb-", "red", "-rrb-"]

    coco-caption tokenizes one caption per line, and the lexer reads on past the end of a line: "the letter A."
    gives its period up before a line that starts with "The", "in fig." before one that starts with a digit. This
    tokenizes a caption as if the next line did not go on with it.
    """
    # coco-caption turns newlines into spaces, and strips the trailing whitespace off a line, which its last token
    # (a URL, say) can end in, before splitting it into tokens at spaces.
    tokens = [token.lower() for token in _lex(caption.replace("\n", " ") + "\n")]
    if tokens:
        tokens[-1] = tokens[-1].rstrip()
    return [token for token in tokens if token not in _PUNCTUATION]


def _ngram_counts(tokens: Tokens, max_n: int) -> Counter[tuple[str, ...]]:
    """How often each n-gram of 1 to max_n tokens occurs."""
    return Counter(
        tuple(tokens[start : start + n]) for n in range(1, max_n + 1) for start in range(len(tokens) - n + 1)
    )


def bleu(references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens], max_n: int = 4) -> list[float]:
    """Corpus BLEU-1..max_n as coco-caption computes it, with the reference length closest to each candidate's."""
    matches = [0] * max_n
    guesses = [0] * max_n
    candidate_length = reference_length = 0
    for image_references, candidate in zip(references, candidates, strict=True):
        clip = Counter()
        for reference in image_references:
            clip |= _ngram_counts(reference, max_n)
        for ngram, count in _ngram_counts(candidate, max_n).items():
            matches[len(ngram) - 1] += min(count, clip[ngram])
        for n in range(max_n):
            guesses[n] += max(0, len(candidate) - n)
        candidate_length += len(candidate)
        # The closest reference length; ties go to the shorter reference.
        lengths = [len(reference) for reference in image_references]
        reference_length += min(lengths, key=lambda length: (abs(length - len(candidate)), length))
    # coco-caption's constants: they turn a zero precision into a tiny score instead of a math error.
    tiny, small = 1e-15, 1e-9
    precisions = [(match + tiny) / (guess + small) for match, guess in zip(matches, guesses)]
    length_ratio = (candidate_length + tiny) / (reference_length + small)
    brevity_penalty = math.exp(1 - 1 / length_ratio) if length_ratio < 1 else 1.0
    return [math.prod(precisions[:n]) ** (1 / n) * brevity_penalty for n in range(1, max_n + 1)]


def _lcs_length(first: Tokens, second: Tokens) -> int:
    """Length of the longest common subsequence of two token lists."""
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for j, other in enumerate(second):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens], beta: float = 1.2) -> float:
    """ROUGE-L per image (best precision and best recall over its references, F-measure with beta), averaged."""
    scores = []
    for image_references, candidate in zip(references, candidates, strict=True):
        common = [_lcs_length(reference, candidate) for reference in image_references]
        precision = max(common) / len(candidate) if candidate else 0.0
        recall = max((length / len(ref) for length, ref in zip(common, image_references) if ref), default=0.0)
        if precision and recall:
            scores.append((1 + beta**2) * precision * recall / (recall + beta**2 * precision))
        else:
            scores.append(0.0)
    return float(np.mean(scores))


def _clipped_cosine(candidate: dict, reference: dict) -> float:
    """Cosine similarity, the candidate's weights clipped at the reference's (CIDEr-D's guard against repetition)."""
    overlap = 0.0
    for ngram, weight in candidate.items():
        reference_weight = reference.get(ngram, 0.0)
        overlap += min(weight, reference_weight) * reference_weight
    norms = math.hypot(*candidate.values()) * math.hypot(*reference.values())
    return overlap / norms if norms else 0.0


class CiderD:
    """CIDEr-D as coco-caption's `Cider` computes it (idf from the references, clipped counts, length penalty, x10),
    one candidate at a time against the references of image i of a fixed corpus.

    `cider_d` builds one over the images it scores; self-critical training builds one over the training set, whose
    idf is then the reward's. Tokens may be words or word ids. Over a single image every n-gram is in all
    documents and every score is 0.
    """

    def __init__(self, references: Sequence[Sequence[Tokens]], max_n: int = 4, sigma: float = 6.0):
        self.max_n, self.sigma = max_n, sigma
        counts = [[_ngram_counts(reference, max_n) for reference in image] for image in references]
        self.document_frequency = Counter(ngram for image in counts for ngram in set().union(*image))
        self.log_images = math.log(len(references))
        self.references = [[(self._tf_idf(c), len(r)) for c, r in zip(image_counts, image)]
                           for image_counts, image in zip(counts, references)]

    def _tf_idf(self, counts: Counter) -> list[dict]:
        """An n-gram count vector weighted by idf, split by n-gram length."""
        vectors: list[dict] = [{} for _ in range(self.max_n)]
        for ngram, count in counts.items():
            # An n-gram no reference has counts as seen once.
            idf = self.log_images - math.log(max(1, self.document_frequency[ngram]))
            vectors[len(ngram) - 1][ngram] = count * idf
        return vectors

    def score(self, candidate: Tokens, image: int) -> float:
        candidate_vectors = self._tf_idf(_ngram_counts(candidate, self.max_n))
        similarity = np.zeros(self.max_n)
        for reference_vectors, length in self.references[image]:
            length_penalty = math.exp(-((len(candidate) - length) ** 2) / (2 * self.sigma**2))
            similarity += [length_penalty * _clipped_cosine(c, r) for c, r in zip(candidate_vectors, reference_vectors)]
        return 10.0 * float(np.mean(similarity)) / len(self.references[image])


def cider_d(
    references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens], max_n: int = 4, sigma: float = 6.0
) -> float:
    """Corpus CIDEr-D as coco-caption reports it: the mean over images, idf from these images' references."""
    if len(references) != len(candidates):
        raise ValueError(f"{len(references)} reference sets for {len(candidates)} candidates")
    scorer = CiderD(references, max_n, sigma)
    return float(np.mean([scorer.score(candidate, i) for i, candidate in enumerate(candidates)]))


def _coco_meteor(references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens]) -> float:
    """METEOR 1.5 through pycocoevalcap's wrapper around the Java jar."""
    if shutil.which("java") is None:
        raise RuntimeError("no java executable on PATH")
    try:
        from pycocoevalcap.meteor.meteor import Meteor
    except ImportError:
        raise RuntimeError("pycocoevalcap is not installed (pip install 'captioner[coco]')") from None
    scorer = Meteor()
    try:
        value, _ = scorer.compute_score(
            {i: [" ".join(reference) for reference in image] for i, image in enumerate(references)},
            {i: [" ".join(candidate)] for i, candidate in enumerate(candidates)},
        )
    except (OSError, ValueError) as error:
        # The jar died. pycocoevalcap's __del__ would wait forever for the lock compute_score kept, then fail to
        # flush the unsent input; release the one and drop the other.
        scorer.lock.release()
        with contextlib.suppress(OSError):
            scorer.meteor_p.stdin.close()
        raise RuntimeError(f"the METEOR jar gave no score ({error})") from None
    return value


def _nltk_meteor(references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens]) -> float:
    """nltk's METEOR per image, averaged; needs the WordNet data, which this never downloads."""
    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        raise RuntimeError("nltk's WordNet data is not installed") from None
    return float(np.mean([nltk_meteor(image, candidate) for image, candidate in zip(references, candidates)]))


def meteor_score(
    references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens], method: str = "auto"
) -> tuple[float | None, str]:
    """METEOR and the implementation that computed it.

    "auto" tries coco-caption's METEOR 1.5, then nltk's, and returns (None, "skipped: <reasons>") when neither runs;
    "coco" or "nltk" forces one and raises RuntimeError when it cannot run; "none" skips METEOR.
    """
    implementations = {"coco": (COCO_METEOR, _coco_meteor), "nltk": (NLTK_METEOR, _nltk_meteor)}
    if method == "none":
        return None, "skipped: meteor='none'"
    if method not in METEOR_CHOICES:
        raise ValueError(f"meteor must be one of {', '.join(METEOR_CHOICES)}, got {method!r}")
    if method != "auto":
        name, implementation = implementations[method]
        return implementation(references, candidates), name
    failures = []
    for name, implementation in implementations.values():
        try:
            return implementation(references, candidates), name
        except RuntimeError as error:
            failures.append(f"{name}: {error}")
    return None, f"skipped: {'; '.join(failures)}"


def _check_inputs(references: Mapping, candidates: Mapping) -> None:
    """Raise ValueError for ids that only one side has and for captions that are not strings."""
    one_sided = {
        "references but no candidate": references.keys() - candidates.keys(),
        "a candidate but no references": candidates.keys() - references.keys(),
    }
    problems = []
    for what, ids in one_sided.items():
        if ids:
            shown = ", ".join(sorted(map(repr, ids))[:5]) + (", ..." if len(ids) > 5 else "")
            problems.append(f"{len(ids)} id(s) have {what}: {shown}")
    if problems:
        raise ValueError("; ".join(problems))
    if not candidates:
        raise ValueError("there are no captions to score")
    for image_id, candidate in candidates.items():
        if not isinstance(candidate, str):
            raise ValueError(f"the candidate for image {image_id!r} must be one caption string")
        captions = references[image_id]
        if isinstance(captions, str) or not captions or not all(isinstance(caption, str) for caption in captions):
            raise ValueError(f"the references for image {image_id!r} must be a non-empty list of caption strings")


def score(
    references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str], meteor: str = "auto"
) -> dict[str, float | str | None]:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr(-D) of raw candidate captions against raw reference captions.

    Both mappings are keyed by image id, as in coco-caption; scores are on its scales (0-1, CIDEr up to 10).
    `meteor` picks the METEOR implementation (see `meteor_score`); "METEOR-method" in the result names the one used.
    """
    _check_inputs(references, candidates)
    ids = list(candidates)
    reference_tokens = [[tokenize(caption) for caption in references[image_id]] for image_id in ids]
    candidate_tokens = [tokenize(candidates[image_id]) for image_id in ids]
    meteor_value, meteor_method = meteor_score(reference_tokens, candidate_tokens, meteor)
    bleu_scores = bleu(reference_tokens, candidate_tokens)
    return {
        **{f"BLEU-{n}": value for n, value in enumerate(bleu_scores, start=1)},
        "METEOR": meteor_value,
        "ROUGE-L": rouge_l(reference_tokens, candidate_tokens),
        "CIDEr": cider_d(reference_tokens, candidate_tokens),
        "METEOR-method": meteor_method,
    }
