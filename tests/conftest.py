"""pytest fixtures for the clua end-to-end tests (tests/e2e)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lab as labmod  # noqa: E402

ROOT = labmod.ROOT


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("the netns lab needs root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) not installed")


@pytest.fixture(scope="module")
def lab(request):
    """A lab per test module.  A module sets ``LAB = dict(members=3, vxlan_members=1, ...)``
    to choose its parameters (keyword arguments of lab.Lab)."""
    _need_root()
    params = dict(getattr(request.module, "LAB", {}))
    lb = labmod.Lab(**params)
    try:
        lb.up()
    except labmod.PmdUnavailable as e:
        pytest.skip(str(e))
    with lb:
        yield lb


@pytest.fixture
def make_lab():
    """Factory for extra labs inside a test; all are torn down afterwards."""
    _need_root()
    made = []

    def make(**kw):
        try:
            lb = labmod.Lab(**kw).up()
        except labmod.PmdUnavailable as e:
            pytest.skip(str(e))
        made.append(lb)
        return lb

    yield make
    for lb in made:
        lb.down()


@pytest.fixture(scope="session")
def aliasd_bin():
    """Path of the aliasd binary: $CLUA_ALIASD or target/release/aliasd; skips if absent."""
    path = labmod.aliasd_binary()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.skip(f"aliasd not built ({path} missing): run `cargo build --release` "
                    f"or set CLUA_ALIASD")
    return path


@pytest.fixture(scope="session")
def member_bin(aliasd_bin):
    """Path of the member agent: $CLUA_MEMBER or the clua-member beside aliasd. Fails (does not
    skip) when aliasd is there but clua-member is not: the two are built together."""
    path = labmod.member_binary()
    assert path.is_file() and os.access(path, os.X_OK), (
        f"clua-member not built ({path} missing): run `cargo build --release` or set CLUA_MEMBER")
    return path


@pytest.fixture(scope="session")
def run_check(aliasd_bin, tmp_path_factory):
    """run_check(toml_text) -> CompletedProcess of `aliasd --config F --check`."""
    d = tmp_path_factory.mktemp("check")
    n = [0]

    def run(text: str):
        n[0] += 1
        f = d / f"cfg{n[0]}.toml"
        f.write_text(text)
        return subprocess.run([str(aliasd_bin), "--config", str(f), "--check"],
                              capture_output=True, text=True, timeout=30)

    return run
