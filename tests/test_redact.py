from __future__ import annotations

import json

import pandas as pd
import phonenumbers
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens.errors import ConfigError
from sessionlens.redact import (
    DEFAULT_SALT,
    Redactor,
    known_names,
    redact_table,
    redact_text,
    salt_fingerprint,
    token,
)

# The spellings the generator's callers use (datasets._voice_script._PHONE_FORMATS) and more.
FORMATS = [
    "({a}) {x}-{n}",
    "{a}-{x}-{n}",
    "+1 {a} {x} {n}",
    "{a}.{x}.{n}",
    "{a} {x} {n}",
    "+1{a}{x}{n}",
    "1{a}{x}{n}",
    "{a}{x}{n}",
    "+1 ({a}) {x}-{n}",
]
AREAS = ["415", "510", "650", "408", "707", "925", "212", "617"]


@given(
    area=st.sampled_from(AREAS),
    exchange=st.integers(200, 999),
    line=st.integers(0, 9999),
    fmt=st.sampled_from(FORMATS),
    before=st.sampled_from(["call me at ", "", "number: ", "It's Sam, "]),
)
@settings(max_examples=200, deadline=None)
def test_every_format_of_a_number_gets_its_e164_token(area, exchange, line, fmt, before):
    number = fmt.format(a=area, x=exchange, n=f"{line:04d}")
    e164 = f"+1{area}{exchange}{line:04d}"
    if not phonenumbers.is_valid_number(phonenumbers.parse(e164)):
        return  # not a real US number: nothing promises to catch it in free text
    out = redact_text(before + number + ", thanks", salt="s")
    assert out == before + token("phone", e164, salt="s") + ", thanks"


@given(st.text(alphabet="abc XYZ0123456789+-().@,:;", max_size=80))
@settings(max_examples=300, deadline=None)
def test_redaction_is_idempotent(text):
    r = Redactor(names=["Sarah Chen", "Milo"])
    once = r.text(text)
    assert r.text(once) == once


def test_salt_changes_every_token_and_never_appears():
    text = "Sarah Chen (510) 555-0143 sarah@example.org about Milo"
    a = redact_text(text, salt="s3cret-one", names=["Sarah Chen", "Milo"])
    b = redact_text(text, salt="s3cret-two", names=["Sarah Chen", "Milo"])
    tokens_a, tokens_b = set(a.split()), set(b.split())
    assert len(tokens_a - tokens_b) == 4  # phone, email, two names: all different
    assert redact_text(text, salt="s3cret-one", names=["Sarah Chen", "Milo"]) == a  # stable
    assert "s3cret" not in a and salt_fingerprint("s3cret-one") != salt_fingerprint("s3cret-two")
    assert redact_text(text) == redact_text(text, salt=DEFAULT_SALT)


def test_names_are_whole_words_any_case_full_name_first():
    r = Redactor(names=["Sarah Chen", "Max", "Kevin O'Brien"])
    out = r.text("SARAH CHEN called for max; Maxwell stays; Sarah again, and Kevin O'Brien.")
    assert out.split()[0:2] == [r.name_token("Sarah Chen"), "called"]
    assert r.name_token("max") in out and "Maxwell stays" in out
    assert r.name_token("Sarah") in out and "O'Brien" not in out and "Kevin" not in out
    assert r.name_token("SARAH CHEN") == r.name_token("sarah  chen")


def test_emails_are_tokens_by_lower_case():
    out = redact_text("write to Jo.Doe+x@Mail.Example.com or jo.doe+x@mail.example.com.")
    first, second = out.split()[2], out.split()[4].rstrip(".")
    assert first == second and first.startswith("email_")


@pytest.mark.parametrize(
    "text",
    [
        "on 2026-10-10 at 09:15, 2026-09-01T10:32:04.715Z",
        "tokens 4361 in, 2527 out; cost 0.007626",
        "patient P-8795ad guardian G-0194 appointment A-12345678",
        "fingerprint 3f9a2c1b510555014312ab",
        "tool_calls 12 of 1234567",
    ],
)
def test_numbers_that_are_not_phones_stay(text):
    assert redact_text(text) == text


def test_json_fields_are_tokenised_by_what_their_key_says():
    r = Redactor()
    details = {
        "parent_name": "Priya Patel",
        "children": ["Ava", "Leo"],
        "phone_raw": "555 0143 ext",  # no parser would find this in free text
        "phone_e164": "+15105550143",
        "guardian": {"email": "P@X.io"},
        "requested_dates": ["2026-09-12"],
        "sources": {"phone": "tool_arguments"},
        "child_count": 2,
    }
    out = json.loads(r.cell(json.dumps(details)))
    assert out["parent_name"] == r.name_token("Priya Patel")
    assert out["children"] == [r.name_token("Ava"), r.name_token("Leo")]
    assert out["phone_e164"] == r.phone_token("(510) 555-0143")
    assert out["phone_raw"].startswith("phone_")
    assert out["guardian"]["email"] == r.email_token("p@x.io")
    assert out["requested_dates"] == ["2026-09-12"]
    assert out["sources"] == {"phone": "tool_arguments"} and out["child_count"] == 2
    assert r.cell("{not json: (510) 555-0143") == "{not json: " + r.phone_token("+15105550143")


def test_redact_table_arrow_and_pandas_keep_types_and_safe_columns():
    r = Redactor(names=["Milo"])
    table = pa.table(
        {
            "session_id": ["sess-(510) 555-0143"],  # a safe column is never touched
            "user_id": ["+15105550143"],
            "caller_intent_summary": ["cancel for Milo"],
            "models": [["gpt-4.1", "call 510.555.0143"]],
            "turn_count": [3],
        }
    )
    out = redact_table(table, redactor=r)
    assert out.schema == table.schema
    row = out.to_pylist()[0]
    assert row["session_id"] == "sess-(510) 555-0143"
    assert row["user_id"] == r.phone_token("+15105550143")
    assert row["caller_intent_summary"] == "cancel for " + r.name_token("Milo")
    assert row["models"] == ["gpt-4.1", "call " + row["user_id"]]
    frame = redact_table(table.to_pandas(), redactor=r)
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict("records")[0]["caller_intent_summary"] == row["caller_intent_summary"]
    assert frame["turn_count"].tolist() == [3]


def test_unknown_token_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="kind: must be one of phone, email, name"):
        token("ssn", "123")


def test_known_names_come_from_booking_details(con, tmp_path):
    assert known_names(con) == []
    ds = sl.datasets.generate(30, seed=4)
    sl.datasets.write_langfuse_blob_export(ds, tmp_path)
    sl.load(con, tmp_path)
    sl.analyze_sessions(con)
    analysed = ds.planted[~ds.planted.is_internal]  # evaluator sessions are not analysed
    planted = set(analysed.parent_name) | {c for kids in analysed.children for c in kids}
    assert set(known_names(con)) == planted
