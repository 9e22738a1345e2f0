# SPDX-License-Identifier: MIT
"""firmware/aii_node/frame.py and auth.py against the host's independent codec and hmac."""

import hashlib
import hmac
import importlib
import sys
import types
import zlib

import nodekit  # also puts firmware/ and the aii shim on sys.path
import pytest
from aii_host import frame as host
from aii_node import auth, frame
from hypothesis import given, settings
from hypothesis import strategies as st
from mp_util import load_pure


def test_crc_matches_zlib_with_and_without_binascii(monkeypatch):
    data = b"1|7|status|{}|-"
    assert frame.crc32(data) == zlib.crc32(data)
    # A port without binascii.crc32: the node takes the ledger's (aii.crc32, here the shim's
    # aii_host); the firmware image holds one CRC-32 table, in aii/_ledger.py.
    import aii  # the shim: nodekit put it first on sys.path

    monkeypatch.setitem(sys.modules, "binascii", types.ModuleType("binascii"))
    try:
        importlib.reload(frame)
        assert frame._crc32 is aii.crc32
        for blob in (b"", data, bytes(range(256))):
            assert frame.crc32(blob) == zlib.crc32(blob)
    finally:
        monkeypatch.undo()
        importlib.reload(frame)
    # ... and that table itself, as a port without binascii.crc32 runs it.
    ledger = load_pure("_ledger", "aii_pure_ledger_crc")
    monkeypatch.setattr(ledger, "_crc32", None)
    for blob in (b"", data, bytes(range(256))):
        assert ledger.crc32(blob) == zlib.crc32(blob)


def test_node_frame_decodes_on_host_and_back():
    line = frame.build(42, b"ok", b'{"seq":3}')
    f = host.decode(line)
    assert (f.seq, f.kind, f.body, f.mac) == (42, "ok", {"seq": 3}, "-")
    req = host.encode(9, "transfer", {"amount": 5}, key=b"k", node="n\u00e91")
    g = frame.parse(req)
    assert (g.seq, g.kind, g.body, g.mac.decode()) == (
        9,
        b"transfer",
        b'{"amount":5}',
        host.mac_of(b"k", g.signed.decode(), "n\u00e91"),
    )
    # The node binds the same bytes (auth.bound), for its own id only.
    assert auth.check(b"k", auth.bound("n\u00e91", g.signed), g.mac)
    assert not auth.check(b"k", auth.bound("n1", g.signed), g.mac)


@pytest.mark.parametrize(
    "line, code",
    [
        (b"hello", frame.E_FRAME),
        (b"@1|1|hello|{}|-", frame.E_FRAME),  # no crc
        (b"@1|1|hello|{}|-*0000000g", frame.E_FRAME),
        (b"@1|1|hello|{}|-*00000000", frame.E_CRC),
        (b"@" + b"x" * 1100, frame.E_TOO_LONG),
    ],
)
def test_errors(line, code):
    with pytest.raises(frame.FrameError) as e:
        frame.parse(line)
    assert e.value.code == code


def crc_ok(payload):
    return b"@%s*%08x" % (payload, zlib.crc32(payload))


@pytest.mark.parametrize(
    "payload, code, seq",
    [
        (b"2|5|hello|{}|-", frame.E_VERSION, 5),
        (b"1|0|hello|{}|-", frame.E_FRAME, 0),
        (b"1|+5|hello|{}|-", frame.E_FRAME, 0),
        (b"1|2147483648|hello|{}|-", frame.E_FRAME, 0),
        (b"1|5|Hello|{}|-", frame.E_FRAME, 5),
        (b"1|5|hello|{}", frame.E_FRAME, 5),
        (b"1|5|hello|{}|abc", frame.E_FRAME, 5),
    ],
)
def test_field_errors_echo_readable_seq(payload, code, seq):
    with pytest.raises(frame.FrameError) as e:
        frame.parse(crc_ok(payload))
    assert (e.value.code, e.value.seq) == (code, seq)


def test_body_may_hold_bars_and_stars():
    f = frame.parse(host.encode(3, "config_set", {"key": "label", "value": "a|b*c"}))
    assert f.body == b'{"key":"label","value":"a|b*c"}'


def test_build_refuses_what_parse_would_refuse():
    with pytest.raises(ValueError):
        frame.build(1, b"ok", b"x" * 1100)
    with pytest.raises(ValueError):
        frame.build(1, b"ok", b"\x03")


@settings(max_examples=nodekit.FUZZ, deadline=None)
@given(st.binary(max_size=1100))
def test_fuzz_random_bytes_only_frame_errors(data):
    try:
        f = frame.parse(data)
    except frame.FrameError as e:
        assert 1 <= e.code <= 11 and 0 <= e.seq <= frame.SEQ_MAX
    else:  # random bytes passing the CRC is possible only if they spell a frame
        assert host.decode(data.decode()).seq == f.seq


@settings(max_examples=nodekit.FUZZ, deadline=None)
@given(
    st.integers(1, frame.SEQ_MAX),
    st.sampled_from(["status", "transfer", "ledger"]),
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=8), max_size=4),
    st.data(),
)
def test_fuzz_one_flipped_byte_is_caught(seq, kind, body, data):
    line = bytearray(host.encode(seq, kind, body, key=b"k", node="n1")[:-1])
    i = data.draw(st.integers(0, len(line) - 1))
    old = line[i]
    line[i] = data.draw(st.integers(0x20, 0x7E).filter(lambda c: c != old))
    with pytest.raises(frame.FrameError):
        frame.parse(bytes(line))


@given(st.binary(max_size=100), st.binary(max_size=300))
def test_hmac_matches_stdlib(key, msg):
    assert auth.mac(key, msg).decode() == hmac.new(key, msg, hashlib.sha256).hexdigest()
    assert auth.check(key or b"x", msg, auth.mac(key or b"x", msg))


def test_check_refuses_wrong_tag_and_no_key():
    tag = auth.mac(b"key", b"m")
    assert not auth.check(b"key", b"m2", tag)
    assert not auth.check(b"key", b"m", tag[:-1] + (b"0" if tag[-1:] != b"0" else b"1"))
    assert not auth.check(b"", b"m", auth.mac(b"", b"m"))
    assert not auth.equal(b"ab", b"abc")
