"""Note text between HTML (HubSpot notes) and plain text (BottleCRM comments)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dealsync.mapping import load_notes_mapping
from dealsync.note_text import (
    author_line,
    author_prefix,
    html_to_text,
    normalize_text,
    text_to_html,
)

BOTTLECRM_NOTES = load_notes_mapping("mappings/bottlecrm_shared_notes.yaml")
BODY = next(r for r in BOTTLECRM_NOTES.fields if r.name == "body")
WORDS = st.text(alphabet=st.sampled_from("ab <>&\"'\n\t\r\u00e9"), max_size=40)


@given(WORDS)
def test_plain_text_survives_the_trip_through_html(text):
    assert html_to_text(text_to_html(text)) == normalize_text(text)


@given(WORDS)
def test_a_comment_and_the_note_written_from_it_read_the_same(text):
    """No echo: what the vendor holds after a copy reads as the partner's value."""
    partner = BODY.read("partner", {"comment": text})
    if partner is None:
        return
    written = BODY.write("vendor", partner)
    assert BODY.read("vendor", {"hs_note_body": written}) == partner


def test_html_becomes_paragraphs_and_line_breaks():
    html = "<p>Pricing <b>attached</b></p><ul><li>one</li><li>two &amp; three</li></ul>a<br>b"
    assert html_to_text(html) == "Pricing attached\n\none\n\ntwo & three\n\na\nb"
    assert text_to_html("x < y\nnext\n\n\n\nlast") == "<p>x &lt; y<br>next</p><p>last</p>"


def test_author_lines_are_recognised_and_stripped_in_both_formats():
    for fmt, body in (("html", "<p>Hi</p>"), ("text", "Hi")):
        line = author_line("Ann Lee", "ann@acme.test", fmt)
        assert author_prefix(line + body) == line
        assert (
            BODY.read(
                "partner" if fmt == "text" else "vendor",
                {"comment": line + body, "hs_note_body": line + body},
            )
            == "Hi"
        )
    assert author_prefix("Ann wrote: hello") == ""
