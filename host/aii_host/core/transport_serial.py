# SPDX-License-Identifier: MIT
"""Transport over a serial port with pyserial (USB CDC, UART adapter, or a vboard's pty)."""

import serial

from .transport import Transport, TransportError


class SerialTransport(Transport):
    def __init__(self, device, baudrate=115200):
        self.device = device
        self.baudrate = baudrate
        self.name = device
        self._ser = None

    def open(self):
        try:
            # exclusive: two tools on one port interleave frames; refuse instead.
            self._ser = serial.Serial(self.device, self.baudrate, timeout=0, exclusive=True)
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"cannot open {self.device}: {e}") from None
        return self

    def write(self, data):
        try:
            self._ser.write(data)
            self._ser.flush()
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"write to {self.device} failed: {e}") from None

    def read(self, timeout):
        try:
            self._ser.timeout = timeout
            first = self._ser.read(1)
            if not first:
                return b""
            self._ser.timeout = 0
            return first + self._ser.read(self._ser.in_waiting or 0)
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"read from {self.device} failed: {e}") from None

    def close(self):
        if self._ser is not None:
            self._ser.close()
            self._ser = None
