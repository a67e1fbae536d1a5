"""Memory settings of the private PostgreSQL cluster follow the machine (timescaledb-tune's rule)."""

from agri.stack.postgres import memory_conf

MB = 1024 * 1024


def test_quarter_of_memory_for_shared_buffers() -> None:
    assert memory_conf(8 * 1024 * MB) == {"shared_buffers": "'2048MB'", "effective_cache_size": "'6144MB'"}


def test_bounds() -> None:
    assert memory_conf(256 * MB)["shared_buffers"] == "'128MB'"  # never below 128 MB
    assert memory_conf(64 * 1024 * MB)["shared_buffers"] == "'4096MB'"  # never above 4 GB
    assert memory_conf(0) == {"shared_buffers": "'256MB'"}  # unknown memory: a safe default


def test_this_machine() -> None:
    conf = memory_conf()
    shared = int(conf["shared_buffers"].strip("'MB"))
    assert 128 <= shared <= 4096
