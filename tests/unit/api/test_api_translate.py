"""The create body docker's clients send → RunOptions."""

from __future__ import annotations

import pytest

from tomato.api.translate import run_options
from tomato.errors import InvalidArgument

# What `docker run -d --name web -p 127.0.0.1:8080:80 -v /srv:/data:ro -e A=1 -m 64m
# --cpus 0.5 --restart on-failure:2 --label k=v -w /tmp -u 1000 busybox httpd -f` sends
# (trimmed to the fields that are set).
CLI_BODY = {
    "Hostname": "", "User": "1000", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "ExposedPorts": {"80/tcp": {}}, "Tty": False, "OpenStdin": False,
    "Env": ["A=1"], "Cmd": ["httpd", "-f"], "Image": "busybox", "Volumes": None,
    "WorkingDir": "/tmp", "Entrypoint": None, "Labels": {"k": "v"},
    "HostConfig": {
        "Binds": ["/srv:/data:ro"], "NetworkMode": "default",
        "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}, "AutoRemove": False,
        "Memory": 64 << 20, "NanoCpus": 500_000_000, "ConsoleSize": [0, 0],
        "LogConfig": {"Type": "", "Config": {}},
    },
    "NetworkingConfig": {"EndpointsConfig": {"default": {}}},
}


def test_the_docker_cli_body() -> None:
    o = run_options(CLI_BODY, "web")
    assert o.image == "busybox" and o.name == "web"
    assert o.command == ["httpd", "-f"] and o.entrypoint is None
    assert o.env == ["A=1"] and o.workdir == "/tmp" and o.user == "1000"
    assert o.detach is True
    assert o.volumes == ["/srv:/data:ro"]
    assert o.network == "bridge"  # "default" means the bridge
    assert o.publish == [{"proto": "tcp", "host_ip": "127.0.0.1", "host_port": 8080,
                          "container_port": 80}]
    assert o.expose == ["80/tcp"]
    assert (o.restart, o.restart_max) == ("on-failure", 2)
    assert o.memory == 64 << 20 and o.cpus == 0.5
    assert o.labels == {"k": "v"}


def test_attach_tty_entrypoint_and_user_network() -> None:
    o = run_options({"Image": "busybox", "Tty": True, "OpenStdin": True, "AttachStdin": True,
                     "AttachStdout": True, "Entrypoint": [""], "Cmd": None,
                     "HostConfig": {"NetworkMode": "appnet", "AutoRemove": True,
                                    "ConsoleSize": [40, 120]},
                     "NetworkingConfig": {"EndpointsConfig": {"appnet": {
                         "Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.1.0.9"}}}}})
    assert o.tty and o.interactive and not o.detach and o.auto_remove
    assert o.entrypoint == [] and o.command == []
    assert o.network == "appnet" and o.network_aliases == ["web"] and o.ip == "10.1.0.9"
    assert o.console_size == (40, 120)


def test_mounts_tmpfs_ulimits_security() -> None:
    o = run_options({"Image": "busybox", "HostConfig": {
        "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data", "ReadOnly": True},
                   {"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1024}}],
        "Tmpfs": {"/run": "size=1m"}, "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 20}],
        "SecurityOpt": ["no-new-privileges"], "CapAdd": ["NET_ADMIN"], "PidsLimit": 50}})
    assert o.mounts == ["type=volume,target=/data,source=data,readonly=true",
                        "type=tmpfs,target=/scratch,tmpfs-size=1024"]
    assert o.tmpfs == ["/run:size=1m"]
    assert o.ulimits == ["nofile=10:20"]
    assert o.no_new_privileges and o.cap_add == ["NET_ADMIN"] and o.pids_limit == 50


@pytest.mark.parametrize("body,message", [
    ({}, "No image was specified"),
    ([], "cannot unmarshal array into the request body of type object"),
    # wrong JSON types: Docker's (Go's) one-line message naming the field
    ({"Image": 123}, "cannot unmarshal number into field Image of type string"),
    ({"Image": "b", "HostConfig": {"Memory": "abc"}},
     "cannot unmarshal string into field HostConfig.Memory of type int64"),
    ({"Image": "b", "HostConfig": {"Memory": 1.5}}, "number 1.5 into field HostConfig.Memory"),
    ({"Image": "b", "HostConfig": {"Memory": float("inf")}}, "HostConfig.Memory"),
    ({"Image": "b", "HostConfig": {"Memory": 2**70}}, "HostConfig.Memory of type int64"),
    ({"Image": "b", "HostConfig": {"Memory": 1024}}, "Minimum memory limit allowed is 6MB"),
    ({"Image": "b", "HostConfig": {"Memory": -1}}, "must not be negative"),
    ({"Image": "b", "HostConfig": {"Binds": [1, 2]}},
     "cannot unmarshal number into field HostConfig.Binds of type \\[\\]string"),
    ({"Image": "b", "HostConfig": "x"}, "string into field HostConfig of type object"),
    ({"Image": "b", "Labels": {"a": 1}}, "field Labels of type map"),
    ({"Image": "b", "Labels": ["a"]}, "array into field Labels of type object"),
    ({"Image": "b", "Tty": "yes"}, "string into field Tty of type bool"),
    ({"Image": "b", "Cmd": {"a": 1}}, "object into field Cmd"),
    ({"Image": "b", "ExposedPorts": {"80/tcp": 1}}, "field ExposedPorts of type struct"),
    ({"Image": "b", "HostConfig": {"PortBindings": {"80/tcp": "x"}}},
     "field HostConfig.PortBindings.80/tcp of type \\[\\]object"),
    ({"Image": "b", "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "1"}]}},
     "HostConfig.Ulimits\\[0\\].Soft"),
    ({"Image": "b", "NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": 5}}}},
     "NetworkingConfig.EndpointsConfig.n.Aliases"),
    ({"Image": [[[["deep"]]]]}, "array into field Image"),
    ({"Image": "b", "HostConfig": {"Binds": ["a:b:c:d"]}}, "too many colons"),
    ({"Image": "b", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}},
     "invalid restart policy"),
    ({"Image": "b", "HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}},
     "cannot specify both --restart and --rm"),
    ({"Image": "b", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "2-1"}]}}},
     "invalid hostPort: 2-1"),
    ({"Image": "b", "HostConfig": {"SecurityOpt": ["bogus=1"]}}, "invalid --security-opt"),
])
def test_bad_bodies(body: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        run_options(body)  # type: ignore[arg-type]
