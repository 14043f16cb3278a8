"""lib.media.text.whole_number: a number typed by a person, read exactly or refused with the reason."""

import re

import pytest

from lib.media.text import whole_number


@pytest.mark.parametrize("text,value", [("42", 42), (" -7 ", -7), ("2.0", 2), ("1e3", 1000),
                                        ("12345678901234567890", 12345678901234567890)])
def test_whole_number_reads_exactly(text, value):
    assert whole_number(text) == value and type(whole_number(text)) is int


@pytest.mark.parametrize("text,reason", [("1.5", "1.5 is not a whole number"), ("abc", "“abc” is not a number"),
                                         ("", "it is empty"), ("nan", "“nan” is not a number"),
                                         ("1e999999999", "1e999999999 is far too large"),
                                         ("100000", "100000 is outside the allowed range (1 to 1,875)"),
                                         ("0", "0 is outside the allowed range (1 to 1,875)")])
def test_whole_number_refuses_with_the_reason(text, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        whole_number(text, 1, 1875)
