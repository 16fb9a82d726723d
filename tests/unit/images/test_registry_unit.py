from tomato.images.auth import parse_challenge
from tomato.images.manifest import chain_ids
from tomato.images.registry import RegistryClient, is_local


def test_scheme_https_unless_local_or_insecure():
    assert RegistryClient("example.com").scheme == "https"
    assert RegistryClient("docker.io").host == "registry-1.docker.io"
    assert RegistryClient("example.com:5000", insecure=True).scheme == "http"
    for local in ("localhost:5000", "127.0.0.1:5000", "localhost", "127.0.0.5", "[::1]:5000"):
        assert is_local(local), local
        assert RegistryClient(local).scheme == "http"
    assert not is_local("10.0.0.1:5000")


def test_parse_challenge():
    ch = parse_challenge('Bearer realm="https://auth.example/token",service="reg",'
                         'scope="repository:a/b:pull,push"')
    assert ch.scheme == "bearer"
    assert ch.params == {"realm": "https://auth.example/token", "service": "reg",
                         "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="x"').scheme == "basic"


def test_chain_ids():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    ids = chain_ids([a, b])
    import hashlib
    assert ids[0] == a
    assert ids[1] == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
