# SPDX-License-Identifier: MIT
# Transactions, the journal ring, replay (torn tails, corruption found and located),
# checkpoints and the end of the sequence numbers: identical on the device and on the host.
try:
    import aii as a
except ImportError:  # CPython, whose output run-tests.py compares with: the host's
    import aii_host as a

R = a.RECORD_SIZE


def crc32(data):
    # zlib's CRC-32, here so that records can be forged on a port without zlib/binascii.
    c = 0xFFFFFFFF
    for x in data:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ (0xEDB88320 & -(c & 1))
    return c ^ 0xFFFFFFFF


def u32(b, i):
    return b[i] | b[i + 1] << 8 | b[i + 2] << 16 | b[i + 3] << 24


def recrc(rec):
    rec = bytearray(rec)
    rec[-4:] = crc32(rec[:-4]).to_bytes(4, "little")
    return bytes(rec)


def err(fn, *args):
    try:
        fn(*args)
    except a.CorruptError as e:
        print("CorruptError:", e)
    except RuntimeError as e:
        print("RuntimeError:", e)
    else:
        print("no error")


def setup():
    led = a.Ledger()
    led.set_time(1000)
    q = led.add_quantity("item")
    led.open("in", q, initial=100)
    led.open("out", q)
    return led, q


# Record layout (section 8): seq, op, flags, end, timestamp, CRC.
led, q = setup()
led.set_time(2**64 - 1)
led.transfer(0, 1, q, 5)
j = led.journal()
k = len(j) // R
t = (k - 1) * R  # the transfer
print("records", k, [u32(j, i * R) for i in range(k)], [j[i * R + 4] for i in range(k)])
print("end flags", [j[i * R + 7] for i in range(k)], "time", j[t + 8 : t + 16] == b"\xff" * 8)
print("crc ok", all(crc32(j[i * R : i * R + 40]) == u32(j, i * R + 40) for i in range(k)))
print("transfer", u32(j, t + 16) & 0xFFFF, u32(j, t + 16) >> 16, u32(j, t + 32), j[t + 5])

# A transaction: its records carry the end flag on the last one only; rollback restores the
# digest exactly; the longest transaction is JOURNAL - 1 records.
d0 = led.digest()
led.begin()
led.transfer(0, 1, q, 1)
led.transfer(1, 0, q, 3)
led.rollback()
print("rollback exact", led.digest() == d0, led.balance(0), led.journal())
led.begin()
for i in range(a.JOURNAL - 1):
    led.transfer(0, 1, q, 1)
err(led.transfer, 0, 1, q, 1)
led.commit()
j = led.journal()
print("committed", len(j) // R, "end flags", sum(j[i * R + 7] for i in range(len(j) // R)))
print("seals", [u32(j, i * R) for i in range(len(j) // R) if j[i * R + 4] == 10])
print("info", led.info(), "balances", led.balance(0), led.balance(1))

# The ring: records not drained in time are lost, and counted.
led, q = setup()
for i in range(a.JOURNAL + 4):
    led.transfer(0, 1, q, 1)
print("info after", a.JOURNAL + 4, "transfers:", led.info())
print("drained", len(led.journal()) // R, led.info())

# Replay: a torn tail (a transaction without its last record, a partial record) is not
# counted; replaying the same records again skips what the state already has.
led, q = setup()
led.begin()
led.transfer(0, 1, q, 7)
led.transfer(0, 1, q, 8)
led.commit()
led.seal()
j = led.journal()
n = len(j) // R
copy = a.Ledger()
print("torn", copy.replay(j[: 4 * R]), copy.replay(j[: 4 * R + 10]), copy.info()[0])
print("whole", copy.replay(j + j[:20]), copy.digest() == led.digest())
print("again", copy.replay(j), copy.digest() == led.digest())

# Corruption is located: record position and reason; the last complete transaction stays.
bad = bytearray(j)
bad[3 * R + 33] ^= 1
c = a.Ledger()
err(c.replay, bad)
print("kept", c.info()[0])
c = a.Ledger()
err(c.replay, j[:R] + j[2 * R :])  # a record missing
c = a.Ledger()
err(c.replay, j[: 5 * R] + recrc(j[5 * R : 5 * R + 16] + bytes(16) + j[5 * R + 32 :]))
c = a.Ledger()
# A transfer of more than the source holds, with a valid CRC: it does not apply.
forged = bytearray(j[3 * R : 4 * R])
forged[32:40] = (10**6).to_bytes(8, "little")
err(c.replay, j[: 3 * R] + recrc(forged) + j[4 * R :])
print("kept", c.info()[0], c.balance(0))
c, q = setup()
c.begin()
err(c.replay, j)
c.rollback()

# Checkpoints: restore + replay of what follows equals the live ledger; a flipped bit is
# refused; so is a checkpoint inside a transaction.
led, q = setup()
led.transfer(0, 1, q, 9)
led.hold(5, 0, q, 10)
cp = led.checkpoint()
print("checkpoint seq", u32(cp, 4), "= info seq", led.info()[0], "holds", cp[9])
led.transfer(1, 0, q, 2)
j = led.journal()
r = a.Ledger.restore(cp)
print("restored", r.holds(), r.balance(0), r.balance(1))
print("replay over checkpoint", r.replay(j), r.digest() == led.digest())
for i in (0, 5, 40, len(cp) - 1):
    b = bytearray(cp)
    b[i] ^= 0x10
    err(a.Ledger.restore, b)
err(a.Ledger.restore, cp[:20])

# Sequence numbers never wrap: a checkpoint near the end (forged with a valid CRC) leaves
# room for two records, then every operation is refused.
body = bytearray(cp[:-4])
body[4:8] = (2**32 - 4).to_bytes(4, "little")
r = a.Ledger.restore(bytes(body) + crc32(body).to_bytes(4, "little"))
r.transfer(0, 1, q, 1)
r.transfer(0, 1, q, 1)
err(r.transfer, 0, 1, q, 1)
err(r.add_quantity, "x")
print("seq", r.info()[0], r.balance(1))
