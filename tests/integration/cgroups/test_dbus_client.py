"""tomato.cgroups.dbus against the reference implementation: a private dbus-daemon
(which validates every message it relays) and libdbus through dbus-python
(Debian's python3-dbus, run by /usr/bin/python3) as the peer, both ways:
libdbus marshals a call that we decode, we marshal the reply that libdbus decodes.
Plus a hostile peer, which must get a one-line error and never a hang.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tomato.cgroups import dbus
from tomato.cgroups.dbus import Connection, DBusError, Variant
from tomato.errors import Unavailable

SYSTEM_PYTHON = "/usr/bin/python3"

PEER = r'''
import json, sys
import dbus
bus = dbus.bus.BusConnection("unix:path=" + sys.argv[1])
args = eval(sys.argv[4], {"dbus": dbus})
def plain(x):
    if isinstance(x, dbus.Boolean):
        return bool(x)
    if isinstance(x, (dbus.Dictionary, dict)):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(i) for i in x]
    if isinstance(x, float):
        return float(x)
    if isinstance(x, int):
        return int(x)
    return str(x)
try:
    reply = bus.call_blocking(sys.argv[2], "/t", "t.Echo", "Echo", sys.argv[3], args,
                              timeout=20)
    print(json.dumps({"reply": plain(reply)}))
except dbus.exceptions.DBusException as err:
    print(json.dumps({"error": err.get_dbus_name(), "message": err.get_dbus_message()}))
'''


def _have_peer() -> bool:
    if shutil.which("dbus-daemon") is None or not os.path.exists(SYSTEM_PYTHON):
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", "import dbus"], capture_output=True).returncode == 0


needs_peer = pytest.mark.skipif(not _have_peer(),
                                reason="needs dbus-daemon and python3-dbus (Debian's dbus, "
                                       "python3-dbus)")


@pytest.fixture
def bus_path(workdir: Path) -> Iterator[str]:
    """A private dbus-daemon listening in the test's directory."""
    path = str(workdir / "bus")
    daemon = subprocess.Popen(["dbus-daemon", "--session", f"--address=unix:path={path}",
                               "--nofork", "--print-address=1"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert daemon.stdout is not None
        assert daemon.stdout.readline().startswith("unix:path=")  # listening
        yield path
    finally:
        daemon.kill()
        daemon.wait()


def _plain(x: Any) -> Any:
    """Our decoded values in the peer's JSON shape (a variant is its value)."""
    if isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) and \
            x[0] and x[0][0] in "ybnqiuxtdsogva(" and _is_signature(x[0]):
        return _plain(x[1])
    if isinstance(x, (list, tuple)):
        return [_plain(i) for i in x]
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    return x


def _is_signature(text: str) -> bool:
    try:
        return len(dbus.split_signature(text)) == 1
    except ValueError:
        return False


def _exchange(path: str, signature: str, peer_args: str, reply: list[Any]) -> tuple[Any, Any]:
    """The peer calls us with ``peer_args``; we answer ``reply`` with the same signature.
    Returns (what we decoded, what the peer decoded)."""
    with Connection(path, bus=True, timeout=20) as me:
        peer = subprocess.Popen([SYSTEM_PYTHON, "-c", PEER, path, me.unique_name, signature,
                                 peer_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            me.sock.settimeout(20)
            while True:
                if peer.poll() is not None:  # it failed before calling: say why
                    raise AssertionError(peer.communicate()[1])
                msg = me.read_message()
                if msg.type == dbus.METHOD_CALL and msg.member == "Echo":
                    break
            assert msg.fields[dbus.FIELD_SIGNATURE] == signature
            me.send(dbus.METHOD_RETURN, {dbus.FIELD_REPLY_SERIAL: msg.serial,
                                         dbus.FIELD_DESTINATION: msg.fields[dbus.FIELD_SENDER]},
                    signature, reply)
            out, err = peer.communicate(timeout=30)
        finally:
            if peer.poll() is None:
                peer.kill()
                peer.wait()
    assert peer.returncode == 0, err
    return _plain(msg.body), json.loads(out)["reply"]


@needs_peer
def test_a_transient_unit_call_both_ways(bus_path: str) -> None:
    """StartTransientUnit's own signature, with every property type the driver sends."""
    sig = "ssa(sv)a(sa(sv))"
    peer_args = ('["tomato-x.scope", "replace", dbus.Array(['
                 '("Description", dbus.String("tomato container x", variant_level=1)),'
                 '("PIDs", dbus.Array([dbus.UInt32(7), dbus.UInt32(8)], signature="u", '
                 'variant_level=1)),'
                 '("Delegate", dbus.Boolean(True, variant_level=1)),'
                 '("MemoryMax", dbus.UInt64(2**64 - 1, variant_level=1)),'
                 '("AllowedCPUs", dbus.ByteArray(b"\\x05", variant_level=1)),'
                 '("DeviceAllow", dbus.Array([("/dev/null", "rwm"), ("char-pts", "rw")], '
                 'signature="(ss)", variant_level=1))], signature="(sv)"), '
                 'dbus.Array([], signature="(sa(sv))")]')
    expected = ["tomato-x.scope", "replace",
                [["Description", "tomato container x"], ["PIDs", [7, 8]], ["Delegate", True],
                 ["MemoryMax", 2**64 - 1], ["AllowedCPUs", [5]],
                 ["DeviceAllow", [["/dev/null", "rwm"], ["char-pts", "rw"]]]], []]
    reply = ["tomato-x.scope", "replace",
             [("Description", Variant("s", "tomato container x")),
              ("PIDs", Variant("au", [7, 8])), ("Delegate", Variant("b", True)),
              ("MemoryMax", Variant("t", 2**64 - 1)), ("AllowedCPUs", Variant("ay", [5])),
              ("DeviceAllow", Variant("a(ss)", [("/dev/null", "rwm"), ("char-pts", "rw")]))],
             []]
    ours, theirs = _exchange(bus_path, sig, peer_args, reply)
    assert ours == expected
    # dbus-python hands a byte array back as a string of bytes: compare its code points.
    theirs[2][4][1] = [ord(c) for c in theirs[2][4][1]] if isinstance(theirs[2][4][1], str) \
        else theirs[2][4][1]
    assert theirs == expected


@needs_peer
def test_every_basic_type_dicts_and_nesting(bus_path: str) -> None:
    sig = "ynqiuxtdbsoga{sv}(i(s))av"
    peer_args = ('[dbus.Byte(255), dbus.Int16(-2), dbus.UInt16(65535), dbus.Int32(-2**31), '
                 'dbus.UInt32(2**32 - 1), dbus.Int64(-2**63), dbus.UInt64(2**64 - 1), '
                 'dbus.Double(1.5), dbus.Boolean(False), dbus.String("grüße"), '
                 'dbus.ObjectPath("/org/x_1"), dbus.Signature("a(sv)"), '
                 'dbus.Dictionary({"a": dbus.Int32(1, variant_level=1), '
                 '"b": dbus.String("two", variant_level=1)}, signature="sv"), '
                 '(dbus.Int32(3), ("four",)), '
                 'dbus.Array([dbus.UInt64(5, variant_level=1)], signature="v")]')
    expected = [255, -2, 65535, -2**31, 2**32 - 1, -2**63, 2**64 - 1, 1.5, False, "grüße",
                "/org/x_1", "a(sv)", {"a": 1, "b": "two"}, [3, ["four"]], [5]]
    reply = [255, -2, 65535, -2**31, 2**32 - 1, -2**63, 2**64 - 1, 1.5, False, "grüße",
             "/org/x_1", "a(sv)", {"a": Variant("i", 1), "b": Variant("s", "two")},
             (3, ("four",)), [Variant("t", 5)]]
    ours, theirs = _exchange(bus_path, sig, peer_args, reply)
    assert ours == expected
    assert theirs == expected


@needs_peer
def test_an_error_reply_is_a_dbus_error(bus_path: str) -> None:
    with Connection(bus_path, bus=True, timeout=10) as me:
        with pytest.raises(DBusError) as err:
            me.call("org.example.NobodyHere", "/x", "org.example.X", "Y")
    assert err.value.name == "org.freedesktop.DBus.Error.ServiceUnknown"
    assert "\n" not in str(err.value)


@needs_peer
def test_the_daemon_takes_a_body_of_ours_it_validates(bus_path: str) -> None:
    """dbus-daemon checks the marshalling of what it relays: a call to itself with a
    dict and a string array goes through and is answered."""
    with Connection(bus_path, bus=True, timeout=10) as me:
        assert me.unique_name.startswith(":")
        names = me.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                        "org.freedesktop.DBus", "ListNames")[0]
        assert me.unique_name in names  # type: ignore[operator]
        me.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                "AddMatch", "s", ["type='signal',member='JobRemoved'"])


def test_marshal_refuses_what_dbus_cannot_carry() -> None:
    with pytest.raises(ValueError):
        dbus.marshal("s", ["a\0b"])
    with pytest.raises(ValueError):
        dbus.marshal("(s", ["x"])
    with pytest.raises(ValueError):
        dbus.marshal("a{vs}", [{}])  # a dict key must be basic
    with pytest.raises(ValueError):
        dbus.marshal("su", ["only one"])
    with pytest.raises(TypeError):
        dbus.marshal("v", [5])  # a variant must say its type


def _fake_peer(path: str, after_auth: bytes) -> threading.Thread:
    """A listener that authenticates anyone and then sends ``after_auth``."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn, server:
            conn.recv(4096)
            conn.sendall(b"OK 0123456789abcdef0123456789abcdef\r\n")
            conn.recv(4096)  # BEGIN, maybe with the Hello call
            conn.sendall(after_auth)
            try:
                conn.recv(4096)  # until the client gives up
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("sent", [
    b"l\x02\x01\x01" + (2**31).to_bytes(4, "little") + b"\x01\0\0\0\0\0\0\0",  # 2 GiB body
    b"X\x02\x01\x01\0\0\0\0\x01\0\0\0\x08\0\0\0\x05\x01u\0\x01\0\0\0",         # bad byte order
    b"",                                                                        # closes
])
def test_a_hostile_peer_is_a_one_line_error(workdir: Path, sent: bytes) -> None:
    path = str(workdir / "fake")
    t = _fake_peer(path, sent)
    with pytest.raises(Unavailable) as err:
        Connection(path, bus=True, timeout=5)
    t.join(10)
    assert "\n" not in str(err.value) and path in str(err.value)


def test_a_peer_that_refuses_us(workdir: Path) -> None:
    path = str(workdir / "refuser")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn, server:
            conn.recv(4096)
            conn.sendall(b"REJECTED DBUS_COOKIE_SHA1\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with pytest.raises(Unavailable, match="authentication refused.*REJECTED"):
        Connection(path, bus=False, timeout=5)
    t.join(10)


def test_the_system_bus_address_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "tcp:host=x;unix:path=/run/my%20bus,guid=1")
    assert dbus.system_bus_address() == "/run/my bus"
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS")
    assert dbus.system_bus_address() == "/run/dbus/system_bus_socket"
