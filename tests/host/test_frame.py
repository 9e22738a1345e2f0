# SPDX-License-Identifier: MIT
"""aii_host.core.frame (the host's codec, written from docs/protocol.md) against the firmware's own
parser and builder (firmware/aii_node/frame.py, auth.py): two readings of one spec."""

import importlib.util
import zlib
from pathlib import Path

import pytest
from aii_host.core import frame as fr
from hypothesis import given, settings
from hypothesis import strategies as st

NODE = Path(__file__).resolve().parents[2] / "firmware" / "aii_node"


def _load(name):
    path = NODE / (name + ".py")
    if not path.exists():
        pytest.fail(f"firmware/aii_node/{name}.py is missing")
    spec = importlib.util.spec_from_file_location("fw_" + name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def fw():
    return _load("frame"), _load("auth")


KEY = bytes(range(32))
kinds = st.from_regex(r"[a-z_]{1,16}", fullmatch=True)
seqs = st.integers(1, fr.SEQ_MAX)
bodies = st.dictionaries(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8),
    st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=20), st.booleans(), st.none()),
    max_size=5,
)


def test_known_frame_matches_the_spec_by_hand():
    payload = "1|7|hello|{}|-"
    want = f"@{payload}*{zlib.crc32(payload.encode()):08x}\n"
    assert fr.encode(7, "hello", {}) == want.encode()
    f = fr.decode(want)
    assert (f.ver, f.seq, f.kind, f.body, f.mac) == (1, 7, "hello", {}, "-")


@settings(max_examples=100, deadline=None)
@given(seq=seqs, kind=kinds, body=bodies, signed=st.booleans())
def test_host_frames_parse_on_the_node(fw, seq, kind, body, signed):
    ffr, fauth = fw
    try:
        data = fr.encode(seq, kind, body, KEY if signed else None, node="n1")
    except fr.FrameError as e:
        assert "too long" in str(e)
        return  # the host refuses to send it
    f = ffr.parse(data)
    assert (f.seq, f.kind.decode(), f.body.decode()) == (seq, kind, fr.dump_body(body))
    if signed:
        assert fauth.check(KEY, fauth.bound("n1", f.signed), f.mac)
        assert not fauth.check(KEY[:-1] + b"x", fauth.bound("n1", f.signed), f.mac)
        assert not fauth.check(KEY, fauth.bound("n2", f.signed), f.mac)  # another node
        assert not fauth.check(KEY, fauth.bound("n1", f.signed, b"a"), f.mac)  # an answer
    else:
        assert f.mac == b"-"


@settings(max_examples=100, deadline=None)
@given(seq=st.integers(0, fr.SEQ_MAX), kind=st.sampled_from(["ok", "err", "ev"]), body=bodies)
def test_node_frames_decode_on_the_host(fw, seq, kind, body):
    ffr, fauth = fw
    raw = fr.dump_body(body).encode()
    mac = fauth.mac(KEY, fauth.bound("n1", ffr.signed_part(seq, kind.encode(), raw), b"a"))
    try:
        line = ffr.build(seq, kind.encode(), raw, mac)
    except ValueError:
        return
    f = fr.decode(line)
    assert (f.seq, f.kind, f.body) == (seq, kind, body)
    assert fr.verify(f, KEY, "n1", fr.ANSWER) and not fr.verify(f, KEY, "n1")


@settings(max_examples=100, deadline=None)
@given(seq=seqs, body=bodies, pos=st.integers(1, 2000), byte=st.integers(0x20, 0x7E))
def test_one_changed_byte_is_refused_by_both(fw, seq, body, pos, byte):
    ffr, _ = fw
    data = bytearray(fr.encode(seq, "transfer", body, KEY, node="n1"))
    pos = pos % (len(data) - 1)
    if data[pos] == byte:
        return
    data[pos] = byte
    # CRC-32 detects every single-byte change, so both sides must refuse.
    with pytest.raises(fr.FrameError):
        fr.decode(bytes(data))
    with pytest.raises(ffr.FrameError):
        ffr.parse(bytes(data))


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"hello",
        b"@",
        b"@1|1|x|{}|-",
        b"@1|1|x|{}|-*0000000g",
        b"@1|1|x|{}*%08x",
        b"@" + b"1|1|x|{}|-" * 200 + b"*00000000",
    ],
)
def test_malformed_lines_raise_frame_error(line):
    if b"%08x" in line:
        payload = line[1 : line.index(b"*")]
        line = line.replace(b"%08x", b"%08x" % zlib.crc32(payload))
    with pytest.raises(fr.FrameError):
        fr.decode(line)


def test_encode_refuses_what_the_spec_forbids():
    with pytest.raises(fr.FrameError):
        fr.encode(1, "Bad-Kind", {})
    with pytest.raises(fr.FrameError):
        fr.encode(2**31, "hello", {})
    with pytest.raises(fr.FrameError):
        fr.encode(1, "hello", {"x": "y" * 1100})
