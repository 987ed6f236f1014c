"""Container log lines made safe: control characters gone, length bounded, split across reads."""

from __future__ import annotations

from modelyard_common.log_lines import TRUNCATED_MARK, LineSplitter, clean_line


def test_clean_line_drops_nul_and_escape_sequences_and_keeps_tabs() -> None:
    assert clean_line("a\x00b\x1b[31mred\x1b[0m\tend\r") == ("ab[31mred[0m\tend", False)
    assert clean_line("caf\u00e9 \u2603 \x85next") == ("caf\u00e9 \u2603 next", False)


def test_clean_line_cuts_a_long_line_and_says_so() -> None:
    line, cut = clean_line("y" * 30, max_chars=10)
    assert (line, cut) == ("y" * 10 + TRUNCATED_MARK, True)
    assert clean_line("y" * 10, max_chars=10) == ("y" * 10, False)


def test_the_splitter_joins_lines_across_reads_and_keeps_the_unfinished_one() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"one\ntw") == ["one"]
    assert splitter.feed(b"o\nthr") == ["two"]
    assert splitter.feed(b"ee") == []
    assert splitter.finish() == ["three"]
    assert splitter.finish() == []
    assert splitter.truncated is False


def test_the_splitter_bounds_a_line_without_end_and_marks_it() -> None:
    splitter = LineSplitter(max_chars=8)
    lines: list[str] = []
    for _ in range(1000):  # a megabyte that never ends its line
        lines += splitter.feed(b"z" * 1024)
    assert lines == []
    assert len(splitter._partial) <= 8 * 4 + 4  # held bytes stay bounded
    assert splitter.feed(b"z\nnext\n") == ["z" * 8 + TRUNCATED_MARK, "next"]
    assert splitter.truncated is True


def test_the_splitter_decodes_a_character_split_between_reads() -> None:
    snowman = "\u2603".encode()
    splitter = LineSplitter()
    assert splitter.feed(b"a" + snowman[:1]) == []
    assert splitter.feed(snowman[1:] + b"\x00b\n") == ["a\u2603b"]
