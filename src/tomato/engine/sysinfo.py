"""The engine as a whole, as Docker describes it: ``/info`` and ``/version``'s documents,
shared by the API and `tomato info` / `tomato version` (``--format`` reads them)."""

from __future__ import annotations

import os
import platform
import socket
import time

TYPE_CHECKING = False  # typing costs ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

    from tomato.engine.config import EngineConfig


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def server_version(api_version: str, min_api_version: str, server_version: str) -> dict[str, Any]:
    """Docker's ``/version`` document (and `tomato version`'s Server part)."""
    details = {"ApiVersion": api_version, "MinAPIVersion": min_api_version, "Os": "linux",
               "Arch": _arch(), "KernelVersion": platform.release(), "GitCommit": "",
               "GoVersion": f"python{platform.python_version()}", "BuildTime": "",
               "Experimental": "false"}
    return {
        "Platform": {"Name": "Tomato Engine"},
        "Components": [{"Name": "Engine", "Version": server_version, "Details": details},
                       {"Name": "tomato-runtime", "Version": server_version,
                        "Details": {"GitCommit": ""}}],
        "Version": server_version, **{k: v for k, v in details.items() if k != "Experimental"},
    }


def _mem_total() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def info(cfg: EngineConfig, server_version: str) -> dict[str, Any]:
    """Docker's ``/info`` document (and what `tomato info --format` reads)."""
    from tomato.engine import images as im
    from tomato.engine import service
    from tomato.engine.status import LIVE

    containers = service.list_containers(cfg, all_states=True)
    states = [c.state.status for c in containers]
    return {
        "ID": _engine_id(cfg), "Containers": len(containers),
        "ContainersRunning": sum(s in ("running", "restarting") for s in states),
        "ContainersPaused": states.count("paused"),
        "ContainersStopped": sum(s not in LIVE for s in states),
        "Images": len(im.list_images(cfg)), "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "overlayfs"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"],
                    "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "KernelMemory": False, "CpuCfsPeriod": True,
        "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
        "IPv4Forwarding": True, "BridgeNfIptables": False, "BridgeNfIp6tables": False,
        "Debug": False, "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": False,
        "NGoroutines": 0, "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z",
                                                      time.gmtime()),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
        "NEventsListener": 0, "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(), "OSVersion": "", "OSType": "linux",
        "Architecture": platform.machine(), "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None,
                           "AllowNondistributableArtifactsHostnames": None,
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {},
                           "Mirrors": None},
        "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(), "GenericResources": None,
        "DockerRootDir": str(cfg.root), "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": server_version,
        "Runtimes": {"tomato": {"path": "tomato-runtime"}}, "DefaultRuntime": "tomato",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin", *_rootless_option(),
                            *(["name=userns"] if cfg.userns_remap is not None else [])],
        "Warnings": None,
    }


def _rootless_option() -> list[str]:
    """docker's rootless daemon says so among its security options."""
    from tomato._sys import userns

    return ["name=rootless"] if userns.rootless() else []


def _engine_id(cfg: EngineConfig) -> str:
    path = cfg.root / "api" / "engine-id"
    try:
        return path.read_text().strip()
    except OSError:
        path.parent.mkdir(parents=True, exist_ok=True)
        ident = os.urandom(16).hex()
        path.write_text(ident)
        return ident


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"
