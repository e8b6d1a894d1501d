"""coco-caption's tokenization: Stanford's PTBTokenizer (CoreNLP 3.4.1, the jar coco-caption runs) in pure Python,
lower-cased, punctuation dropped.

The rules of its JFlex lexer, PTBLexer.flex, in their order, over the macros of `ptb_macros`; each rule says what
it makes of the text it matches.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable

from .ptb_macros import (
    ABBREV1, ABBREV4, ACRO, ALPHA, APOS, APOSETCETERA, APOSTROPHES, DIGIT, DIGITS, HTHING, INSENTP, LETTER,
    LETTER_CHARS, LETTER_OR_DIGIT, MISCSYMBOL, REDAUX, SENTENCE_STARTS, SENTEND, SGML, SITE, SPACE, SPACENL,
    SREDAUX, THING, THINGA, URL_END, WORD,
)

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
    _rule("<", SGML, action=_nbsp),
    _rule("[&\x96\x97\u2013-\u2015]", r"&(?ai:mdash|ndash|md);|[\x96\x97\u2013-\u2015]", action=_constant("--")),
    _rule("&", r"(?ai:&amp;)", action=_ampersand),
    _rule("&", r"&(?ai:ht|tl|ur|lr|qc|ql|qr|odq|cdq|#[0-9]+);"),
    _rule(f"[{LETTER_CHARS}&]", WORD, REDAUX, _without_soft_hyphens),
    _rule("[A-Za-z\xad]", r"[A-Za-z\xad]*[A-MO-Za-mo-z]\xad*", SREDAUX, _without_soft_hyphens),
    _rule(f"[{LETTER_CHARS}&]", WORD, action=_without_soft_hyphens),
    _rule(
        f"[{ALPHA}{APOSTROPHES}]",
        rf"{APOS}[nN]{APOS}?|[A-HJ-XZn]{APOSETCETERA}[{ALPHA}]{{2,}}|[lLdDjJ]{APOS}"
        rf"|(?ai:dunkin|somethin|ol){APOS}|{APOS}(?ai:em)|{APOS}[2-9]0[sS]|{APOS}(?ai:till?)"
        rf"|[{ALPHA}]+[aeiouyAEIOUY]{APOSETCETERA}[aeiouA-Z][{ALPHA}]*|{APOS}(?ai:cause)|(?ai:cont'd)\.?"
        rf"|(?ai:'twas|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)|[oO]{APOSETCETERA}[oO]",
    ),
    _rule("[yY]", rf"[yY]{APOS}", f"[{ALPHA}]"),
    _rule("[hH]", rf"(?ai:https?://)[^ \t\n\f\r\"<>|(){{}}]+{URL_END}"),
    # With a path the match reaches as far as any reading of the site allows, so that reading comes first.
    _rule(None, rf"(?:{SITE})/[^ \t\n\f\r\"<>|()]+{URL_END}|{SITE}"),
    _rule(
        "[&<a-zA-Z0-9]",
        r"(?:(?ai:&lt;)|<)?[a-zA-Z0-9][^ \t\n\f\r\"<>|()\xa0{}]*@(?:[^ \t\n\f\r\"<>|(){}.\xa0]+\.)*"
        r"[^ \t\n\f\r\"<>|(){}.\xa0]+(?:(?ai:&gt;)|>)?",
    ),
    _rule("[@#]", rf"@[a-zA-Z_][a-zA-Z_0-9]*|#{LETTER}+"),
    _rule(f"[{APOSTROPHES}]", REDAUX, "[^A-Za-z]", _quotes(opening=False)),
    _rule("[nN]", SREDAUX, "[^A-Za-z]", _quotes(opening=False)),
    _rule(DIGIT, rf"{DIGIT}{{1,2}}[\-/]{DIGIT}{{1,2}}[\-/]{DIGIT}{{2,4}}"),
    _rule(
        rf"[\-+.:,\xad\u066b\u066c{DIGITS}]", rf"[\-+]?(?:{DIGIT}*(?:[.:,\xad\u066b\u066c]{DIGIT}+)+|{DIGIT}+)",
        action=_without_soft_hyphens,
    ),
    _rule(
        "[\u207a\u207b\u208a\u208b\u2070\xb9\xb2\xb3\u2074-\u2079\u2080-\u2089]",
        r"[\u207a\u207b\u208a\u208b]?(?:[\u2070\xb9\xb2\xb3\u2074-\u2079]+|[\u2080-\u2089]+)",
    ),
    _rule(DIGIT, rf"(?:{DIGIT}{{1,4}}[\- \xa0])?{DIGIT}{{1,4}}(?:\\?/|\u2044){DIGIT}{{1,4}}", action=_nbsp),
    _rule("[\xbc-\xbe\u2153-\u215e]", "[\xbc-\xbe\u2153-\u215e]", action=lambda text: text.translate(_FRACTIONS)),
    _rule(
        "[-cCpPaAsS]",
        rf"-(?ai:rrb|lrb|rcb|lcb|rsb|lsb)-|(?ai:c\.d\.s|pro-|anti-)|(?ai:s)(?:(?ai:&amp;)|&)(?ai:p-500|ls)"
        rf"|(?ai:cap){APOS}(?ai:n)|(?ai:c){APOS}(?ai:est)",
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
        rf"(?:{ACRO})\.",
        rf"{SPACENL}+(?:{'|'.join(f'{word[0]}(?ai:{re.escape(word[1:])})' for word in SENTENCE_STARTS.split())}"
        rf"|{SGML}){SPACENL}",
        _acronym,
    ),
    _rule("[A-Za-z]", r"(?ai:ca|figs?|prop|nos?|art|bldg|pp|op)\.", rf"{SPACENL}?{DIGIT}"),
    _rule("[pPcC]", r"(?ai:pt)[eyEY]\.|(?ai:co)\.", rf"{SPACE}(?ai:ltd|lim)"),
    _rule("[A-Za-z]", ABBREV1, SENTEND, _reread_period),
    _rule("[A-Za-z]", ABBREV1, r"(?s:..)"),
    _rule("[A-Za-z]", ABBREV1, action=_reread_period),
    _rule("[A-Za-z]", rf"{ABBREV4}\."),
    _rule("[A-Za-z]", ABBREV4, SPACE),
    _rule("[A-Za-z]", ACRO, SPACENL),
    _rule(f"[{APOSTROPHES}]", rf"{APOS}[0-9][0-9]", SPACENL),
    _rule(
        f"[{LETTER_CHARS}{DIGITS}&]",
        rf"{LETTER_OR_DIGIT}+(?:\.{LETTER_OR_DIGIT}+)*\.(?ai:bat|bmp|c|class|cgi|cpp|dll|docx?|exe|gif|gz|h|html?"
        r"|jar|java|jpeg|jpg|mov|mp3|pdf|php|pl|png|ppt|ps|py|sql|tar|txt|wav|x|xml|zip)",
        rf"{SPACENL}|[.?!,]",
    ),
    _rule(f"[{LETTER_CHARS}&]", rf"{WORD}\.", INSENTP, _without_soft_hyphens),
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
    _rule(INSENTP, INSENTP),
    _rule("[?!]", "[?!]+"),
    _rule("[.\xa1\xbf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002=/]",
          "[.\xa1\xbf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002=/]"),
    _rule("[A-Za-z0-9]", rf"{HTHING}\.", INSENTP, _without_soft_hyphens),
    _rule("[A-Za-z0-9]", HTHING, action=_without_soft_hyphens),
    _rule(f"[{ALPHA}{DIGITS}]", rf"{THING}\.", INSENTP),
    _rule(f"[{ALPHA}{DIGITS}]", THING),
    _rule("[A-Z]", rf"{THINGA}\.", INSENTP, _ampersand),
    _rule("[A-Z]", THINGA, action=_ampersand),
    _rule("'", "'", r"[A-Za-z][^ \t\n\r\xa0]", _quotes(opening=True)),
    _rule(f"[{APOSTROPHES}]", REDAUX, action=_quotes(opening=False)),
    _rule("[nN]", SREDAUX, action=_quotes(opening=False)),
    _rule(
        f"[`\u2018-\u201f\x91-\x94\u2039\u203a\xab\xbb{APOSTROPHES}]",
        rf"''|[`\u2018\u2019\u201a\u201b\u201c\u201d\x91\x92\x93\x94\u201e\u201f\u2039\u203a\xab\xbb]{{1,2}}|{APOS}",
        action=_quotes(opening=False),
    ),
    _rule("[<>]", "<<|>>"),
    _rule(MISCSYMBOL, MISCSYMBOL),
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
