"""A small D-Bus client, for the handful of systemd calls the systemd cgroup driver
makes (StartTransientUnit, StopUnit, SetUnitProperties ...).

    with Connection.systemd() as bus:
        job = bus.call(SYSTEMD, SYSTEMD_PATH, MANAGER, "StopUnit", "ss",
                       ["x.scope", "replace"])[0]
        bus.wait_job(str(job))

Authentication is SASL EXTERNAL (our uid as hex digits); messages are
:mod:`.dbuswire`'s.  Calls are blocking and bounded (``timeout``); signals that
arrive meanwhile are kept for :meth:`Connection.wait_signal`.

Where systemd is reached: its private socket /run/systemd/private (root only; no
bus daemon needed, every signal is sent to it unsubscribed) or the system bus
(/run/dbus/system_bus_socket or ``DBUS_SYSTEM_BUS_ADDRESS``: Hello, AddMatch and
systemd's Subscribe first).  Stdlib only (socket, struct), imported only by the
systemd driver, so `tomato-runtime` without --systemd-cgroup never loads it.
"""

from __future__ import annotations

import os
import socket
import struct
import time

from tomato.errors import TomatoError, Unavailable

from .dbuswire import (
    ERROR,
    FIELD_DESTINATION,
    FIELD_ERROR_NAME,
    FIELD_INTERFACE,
    FIELD_MEMBER,
    FIELD_PATH,
    FIELD_REPLY_SERIAL,
    FIELD_SENDER,
    FIELD_SIGNATURE,
    METHOD_CALL,
    METHOD_RETURN,
    SIGNAL,
    Message,
    Variant,
    decode_message,
    encode_message,
    marshal,
    message_length,
    split_signature,
    unmarshal,
)

SYSTEMD = "org.freedesktop.systemd1"
SYSTEMD_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
PRIVATE_SOCKET = "/run/systemd/private"
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"


class DBusError(TomatoError):
    """An error reply: ``name`` is the D-Bus error name (org.freedesktop.systemd1.NoSuchUnit)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message or name)
        self.name = name


class _Silence(Unavailable):
    """The peer said nothing for as long as we wait (callers name what they awaited)."""


# ---- the connection ----------------------------------------------------------------

def system_bus_address() -> str:
    """The system bus's socket path (DBUS_SYSTEM_BUS_ADDRESS's first unix:path=)."""
    env = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "")
    for address in env.split(";"):
        kind, _, params = address.partition(":")
        if kind != "unix":
            continue
        for kv in params.split(","):
            key, _, value = kv.partition("=")
            if key == "path" and value:
                return _unescape_address(value)
    return SYSTEM_BUS_SOCKET


def _unescape_address(value: str) -> str:
    out = bytearray()
    i = 0
    raw = value.encode()
    while i < len(raw):
        if raw[i:i + 1] == b"%" and i + 3 <= len(raw):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode()


class Connection:
    """A blocking connection, for one process (not shared between threads)."""

    def __init__(self, path: str, bus: bool, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._serial = 0
        self._buf = b""
        self._signals: list[Message] = []
        self.unique_name = ""  # ours on a bus (Hello's answer)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self._authenticate()
            if bus:
                self.unique_name = str(self.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                 "org.freedesktop.DBus", "Hello")[0])
        except BaseException:
            self.sock.close()
            raise

    @classmethod
    def systemd(cls, timeout: float = 30.0, private: bool = True) -> Connection:
        """Systemd's manager: its private socket when we may use it (and ``private``),
        else the system bus."""
        errors = []
        if private and os.geteuid() == 0 and os.path.exists(PRIVATE_SOCKET):
            try:
                return cls(PRIVATE_SOCKET, bus=False, timeout=timeout)
            except (OSError, TomatoError) as err:
                errors.append(f"{PRIVATE_SOCKET}: {_reason(err)}")
        address = system_bus_address()
        try:
            conn = cls(address, bus=True, timeout=timeout)
        except (OSError, TomatoError) as err:
            errors.append(f"{address}: {_reason(err)}")
            raise Unavailable("cannot connect to systemd over d-bus: " + "; ".join(errors)) \
                from err
        try:
            # On the bus systemd signals job ends only to its subscribers.
            conn.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                      "AddMatch", "s", [f"type='signal',sender='{SYSTEMD}',"
                                        f"interface='{MANAGER}',member='JobRemoved'"])
            conn.call(SYSTEMD, SYSTEMD_PATH, MANAGER, "Subscribe")
        except BaseException:
            conn.close()
            raise
        return conn

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # -- the wire --
    def _authenticate(self) -> None:
        # BEGIN goes with AUTH, as sd-bus's own client sends it, so that the peer has
        # left its authentication state before our first message arrives: systemd 252
        # read a first call sent right after a separate BEGIN with the BEGIN, during
        # authentication, and left it undispatched until the socket stirred again
        # (seen under qemu/TCG: a 30 s silence, then "Got message" as we hung up).
        uid = str(os.geteuid()).encode().hex().encode()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\nBEGIN\r\n")
        line = self._line()
        if not line.startswith(b"OK "):
            raise Unavailable(f"d-bus authentication refused at {self.path}: "
                              f"{line.decode(errors='replace').strip() or 'no answer'}")

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            if len(self._buf) > 4096:
                raise Unavailable(f"d-bus peer at {self.path} sent no authentication line")
            self._recv_some()
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def _recv_some(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError as err:
            raise _Silence(f"no answer from d-bus peer at {self.path} within "
                           f"{self.sock.gettimeout() or self.timeout:g} s") from err
        if not chunk:
            raise Unavailable(f"d-bus peer at {self.path} closed the connection")
        self._buf += chunk

    def read_message(self) -> Message:
        """The next message, whatever it is (calls to us included)."""
        return self._read_message()

    def _read_message(self) -> Message:
        while len(self._buf) < 16:
            self._recv_some()
        try:
            total = message_length(self._buf[:16])
        except ValueError as err:
            raise Unavailable(f"d-bus peer at {self.path}: {err}") from err
        while len(self._buf) < total:
            self._recv_some()
        data, self._buf = self._buf[:total], self._buf[total:]
        try:
            return decode_message(data)
        except (ValueError, struct.error, KeyError, TypeError) as err:
            raise Unavailable(f"d-bus peer at {self.path} sent a malformed message: "
                              f"{err}") from err

    def send(self, type_: int, fields: dict[int, object], signature: str = "",
             body: list[object] | tuple[object, ...] = ()) -> int:
        self._serial += 1
        self.sock.sendall(encode_message(type_, self._serial, fields, signature, body))
        return self._serial

    def call(self, destination: str, path: str, interface: str, member: str,
             signature: str = "", body: list[object] | tuple[object, ...] = ()) -> list[object]:
        """Call a method and return the reply's body; an error reply raises DBusError."""
        serial = self.send(METHOD_CALL, {FIELD_PATH: path, FIELD_INTERFACE: interface,
                                         FIELD_MEMBER: member, FIELD_DESTINATION: destination},
                           signature, body)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                msg = self._read_message()
            except _Silence as err:
                raise Unavailable(f"no reply to {member} from {self.path} within "
                                  f"{self.timeout:g} s") from err
            if msg.type == SIGNAL:
                self._signals.append(msg)  # a JobRemoved may overtake its call's reply
            elif msg.type in (METHOD_RETURN, ERROR) and \
                    msg.fields.get(FIELD_REPLY_SERIAL) == serial:
                if msg.type == ERROR:
                    text = msg.body[0] if msg.body and isinstance(msg.body[0], str) else ""
                    raise DBusError(str(msg.fields.get(FIELD_ERROR_NAME, "")), text)
                return msg.body
            if time.monotonic() > deadline:
                raise Unavailable(f"no reply to {member} from {self.path} within "
                                  f"{self.timeout:g} s")

    def wait_signal(self, interface: str, member: str, match: object = None,
                    timeout: float | None = None) -> Message:
        """The next signal ``interface.member`` whose body's first value is ``match``
        (any, when None), including those that arrived during earlier calls."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for i, msg in enumerate(self._signals):
                if msg.interface == interface and msg.member == member and \
                        (match is None or (msg.body and msg.body[0] == match)):
                    del self._signals[i]
                    return msg
            self._signals = self._signals[-64:]  # others are of no interest to us
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unavailable(f"no {member} signal from {self.path} within "
                                  f"{self.timeout if timeout is None else timeout:g} s")
            self.sock.settimeout(left)
            try:
                msg = self._read_message()
            except _Silence as err:
                raise Unavailable(f"no {member} signal from {self.path} within "
                                  f"{self.timeout if timeout is None else timeout:g} s") from err
            finally:
                self.sock.settimeout(self.timeout)
            if msg.type == SIGNAL:
                self._signals.append(msg)

    def wait_job(self, job: str, timeout: float | None = None) -> str:
        """Wait for systemd's job ``job`` to end; its result ("done", "failed" ...)."""
        # JobRemoved(u id, o job, s unit, s result): match on the object path.
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unavailable(f"systemd's job {job} did not end within "
                                  f"{self.timeout if timeout is None else timeout:g} s")
            msg = self.wait_signal(MANAGER, "JobRemoved", None, left)
            if len(msg.body) == 4 and msg.body[1] == job:
                return str(msg.body[3])


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError):
        return os.strerror(err.errno).lower() if err.errno else str(err)
    return str(err)


__all__ = [
    "ERROR", "FIELD_DESTINATION", "FIELD_ERROR_NAME", "FIELD_INTERFACE", "FIELD_MEMBER",
    "FIELD_PATH", "FIELD_REPLY_SERIAL", "FIELD_SENDER", "FIELD_SIGNATURE", "MANAGER",
    "METHOD_CALL", "METHOD_RETURN", "SIGNAL", "SYSTEMD", "SYSTEMD_PATH", "Connection",
    "DBusError", "Message", "Variant", "decode_message", "encode_message", "marshal",
    "message_length", "split_signature", "system_bus_address", "unmarshal",
]
