"""Captions that put `captioner.metrics.tokenize` and coco-caption's Stanford PTBTokenizer to the test."""
import random

# Text the tokenizer treats specially, by what it exercises.
SPECIAL_CASES = {
    "punctuation runs": [
        "!!", "?!", "!?", "..", "....", ".....", "!!!", "??", ",,", ";;", "::", ".,", "!.", "?.", ".!", ",.", ";.",
        ":.", "?!?", "!?!", ". .", ". . .", ". . . .", ". . . . .", "..?", ".?", "--", "---", "----", "-----", "-",
        "_", "__", "@", "@@", "#", "##", "*", "**", "***", "\\*", "=", "/",
    ],
    "quotes": [
        "'", '"', "`", "``", "''", "'''", '""', "\u2018", "\u2019", "\u201c", "\u201d", "\u201a", "\u201b", "\u201e",
        "\u201f", "\u2039", "\u203a", "\xab", "\xbb", "\u2018\u2018", "\u2019\u2019", "&quot;", "&apos;", "\x91",
        "\x92", "\x93", "\x94",
    ],
    "brackets": [
        "(", ")", "[", "]", "{", "}", "<", ">", "<<", ">>", "()", "(red)", "[sic]", "{x}", "<b>", "</b>", "<br/>",
        "<a href='x'>", '<img src="a.jpg" />', "<!-- note -->", "&lt;", "&gt;", "-LRB-", "-rrb-",
    ],
    "hyphens": [
        "t-shirt", "x-ray", "well-known", "co-ed", "pre-", "anti-", "pro-", "-5", "+5", "e-mail", "3-year-old",
        "two-thirds", "-ish", "a-b-c-d", "o'clock-tower", "ex-U.S.", "U.S.-U.K.", "non-U.S.", "x_y", "\u2010",
        "x\u2010y", "x\u2011y", "\u2013", "\u2014", "\u2015", "&mdash;", "&ndash;", "\xad", "soft\xadhyphen",
    ],
    "digits": [
        "5", "42", "3.5", "1,000", "10,000.50", ".5", "0.25", "1/2", "3 1/2", "2-1/4", "12/25/2014", "1-2-34",
        "555-123-4567", "(555) 123-4567", "+1 555 123 4567", "555.123.4567", "90s", "'90s", "'90", "2nd", "3rd",
        "4x4", "1st-place", "5-0", "100%", "50/50", "24/7", "1\u20442", "\xbd", "\xbc", "\xbe", "\u2153", "\u215b",
        "x\xb2", "\xb2", "H\u2082O", "No. 5", "no. 9", "fig. 3", "ca. 1900", "pp. 4", "#1", "1.2.3", "1:2", "7-11",
        "1\xad000", "\u0661\u0662",
    ],
    "abbreviations": [
        "Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "St.", "Mt.", "Ave.", "Jr.", "Sr.", "Inc.", "Co.", "Ltd.", "Corp.",
        "U.S.", "U.K.", "U.S.A.", "D.C.", "a.m.", "p.m.", "A.M.", "P.M.", "etc.", "vs.", "e.g.", "i.e.", "Ph.D.",
        "a.k.a.", "Jan.", "Sept.", "Mon.", "Calif.", "Mass.", "Tex.", "Wash.", "Pty.", "Co. Ltd", "Pty. Ltd.", "cf.",
        "Gen.", "Capt.", "Mr", "Dr", "U.S", "A.", "I.", "Z.", "b.", "U. S.", "Miss.", "miss.", "al.", "et al.",
        "Bros.", "Blvd.", "Ed.D.", "CIA", "NASA", "AT&T", "R&B", "S&P", "S&P-500", "S&Ls", "AT&amp;T", "C.D.s", "Ph",
        "est.", "tel.", "sq.", "Pa.", "pa.",
    ],
    "ellipses": ["...", "\u2026", ". . .", "....", "x...", "...x", "\x85", "wait...", "so\u2026"],
    "apostrophes": [
        "don't", "can't", "won't", "isn't", "it's", "he's", "they're", "we've", "I'll", "I'd", "I'm", "y'all",
        "Y'all", "y'know", "ma'am", "o'clock", "rock 'n' roll", "rock 'n roll", "rock'n'roll", "'em", "'cause",
        "dogs'", "James'", "'tis", "'twas", "'Tis", "gonna", "wanna", "gotta", "cannot", "Cannot", "lemme", "gimme",
        "don\u2019t", "it\u2019s", "can`t", "don\u2018t", "ain't", "shan't", "o'neill", "O'Neill", "D'Angelo",
        "l'eau", "d'", "Dunkin'", "somethin'", "ol'", "'till", "'til", "cont'd", "cont'd.", "nor'easter", "c'mon",
        "e'er", "s'mores", "ev'ry", "li'l", "nat'l", "O'o", "Cap'n", "c'est", "it&apos;s", "'s", "'re", "n't", "'d",
        "'ll", "'ve", "'m", "'S", "N'T", "the '60s", "'hello'", "'stop",
    ],
    "slashes": ["and/or", "w/", "a/b/c", "a/b/c/d", "him/her", "1/2/3", "\\/", "//", "A/C", "on/off-road", "km/h"],
    "ampersands": [
        "&", "&&", "R & B", "&amp;", "&AMP;", "Tom&Jerry", "&nbsp;", "&HT;", "&#123;", "&eacute;", "caf&eacute;",
        "&odq;", "&foo;",
    ],
    "money": [
        "$5", "$5.50", "$ 5", "US$10", "US$", "us$5", "\u20ac5", "\xa35", "5\xa2", "\xa5100", "\u20ac", "$", "$$", "A$",
        "C$3", "5$", "\u20a4",
    ],
    "times": ["10:30", "3:45pm", "10 a.m.", "5 p.m.", "5pm", "12:00:00", "9:05 A.M.", "8.30"],
    "emoticons": [
        ":)", ":(", ":-)", ";)", ":D", ":P", "=)", "<3", "^_^", "(^_^)", "o_O", ":-/", "XD", ":'(", ">:(", ":o)", "=]",
        ":|", ":\\", ":{", ":@", ":O", ":o", "-_-", "(^-^)", "(>_<)", "^.^", "x.[^x=~<>]", "T_T", ":-P", ";-)", ":*)",
    ],
    "unicode": [
        "caf\xe9", "na\xefve", "Z\xfcrich", "stra\xdfe", "\xc9COLE", "ni\xf1o", "\xd8resund", "\u03b1\u03b2\u03b3",
        "\u039f\u0394\u039f\u03a3", "\u0441\u043e\u0431\u0430\u043a\u0430", "\u4e00\u53ea\u72d7", "\u3002", "\u3001",
        "\uff01", "\u0643\u0644\u0628", "\u05db\u05dc\u05d1", "\u0915\u0941\u0924\u094d\u0924\u093e", "\U0001f600",
        "\u2764", "\u2600\ufe0f", "\u2122", "\xa9", "\xb0", "\xd7", "\u2022", "\xb7", "e\u0301", "\u0130stanbul",
        "\u212a", "\xa0", "\u200b", "\ufeff", "\u2009", "\u3000", "\t", "\x00", "\x7f", "\x01", "\ufb01", "\U0001d400",
        "\u2167", "\u24b6", "\u0237", "x\u0651y", "\u0e01\u0e34",
    ],
    "web": [
        "http://example.com", "https://x.org/a/b?c=d", "www.google.com", "www.x.co.uk/path", "dogs.com", "a.b.edu",
        "foo@bar.com", "<foo@bar.com>", "&lt;a@b.c&gt;", "@user", "@_x1", "#dogs", "photo.jpg", "report.docx",
        "file.txt.", "a.b.c.txt", "C++", "c#", "F#", "x.com/", "file.c,",
    ],
    # The words after which the tokenizer takes an acronym's period for the end of a sentence.
    "sentence starts": ["The", "A", "He", "It", "Mr.", "In", "You", "Then", "One", "This", "a", "the", "Her", "Here"],
}
RANDOM_TEXT = (
    "abcxyzABCXYZdglnostmyDLOIU0123456789 .,;:!?'\"`-_/\\()[]{}<>@#$%^&*+=~|"
    "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\xa0\xe9\xb2\xbd\u20ac\xa3"
)
# Java ends its output line at these too, where coco-caption, which turns only "\n" into a space, expects one line
# per caption: the caption's tokens would land on the next caption's line.
LINE_BREAKS = "\r\x0b\x0c\u2028\u2029"


def adversarial_captions(words: list[str], count: int, seed: int = 0) -> list[str]:
    """`count` captions of `words` and special cases, in any case, next to each other with and without spaces, and
    strings of random characters."""
    rng = random.Random(seed)
    pieces = [piece for group in SPECIAL_CASES.values() for piece in group]
    recase = [str.lower, str.upper, str.title, str.capitalize]
    captions = []
    for _ in range(count):
        if rng.random() < 0.15:
            captions.append("".join(rng.choice(RANDOM_TEXT) for _ in range(rng.randint(1, 24))))
            continue
        caption = ""
        for _ in range(rng.randint(1, 9)):
            piece = rng.choice(words) if rng.random() < 0.5 else rng.choice(pieces)
            caption += rng.choice(recase)(piece) if rng.random() < 0.1 else piece
            caption += rng.choice([" ", " ", " ", " ", "", "  ", "\n", "\xa0"])
        captions.append(caption.strip(" ") if rng.random() < 0.8 else caption)
    return captions


def every_character() -> list[str]:
    """A caption for each character of the Basic Multilingual Plane, inside a word and after a comma."""
    characters = (chr(code) for code in range(0x10000) if not 0xD800 <= code < 0xE000)
    return [f"a{character}b ,{character}" for character in characters if character not in LINE_BREAKS]
