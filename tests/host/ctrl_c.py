# SPDX-License-Identifier: MIT
"""Imported by every tier's conftest: tests press Ctrl-C (SIGINT to a process they start, or
_thread.interrupt_main in their own). A shell starts a background job (`make test &`, nohup)
with SIGINT ignored; Python then installs no KeyboardInterrupt, in the test process or in the
processes it starts (an ignored signal stays ignored across exec), and those tests hang until
killed. A handler here is reset to the default across exec, so children get Python's own."""

import signal

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
