"""Memory settings of the private PostgreSQL cluster follow the machine (timescaledb-tune's rule)."""

from agri.stack.postgres import memory_bytes, memory_conf

MB = 1024 * 1024


def test_quarter_of_memory_for_shared_buffers() -> None:
    assert memory_conf(8 * 1024 * MB) == {"shared_buffers": "'2048MB'", "effective_cache_size": "'6144MB'"}


def test_bounds() -> None:
    assert memory_conf(256 * MB)["shared_buffers"] == "'128MB'"  # never below 128 MB
    assert memory_conf(64 * 1024 * MB)["shared_buffers"] == "'4096MB'"  # never above 4 GB
    assert memory_conf(0) == {"shared_buffers": "'256MB'"}  # unknown memory: a safe default


def test_this_machine_is_sized_from_its_physical_memory() -> None:
    """Without an argument the conf follows this machine's RAM as the kernel reports it."""
    with open("/proc/meminfo") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    ram = memory_bytes()
    assert abs(ram - kib * 1024) < 64 * MB  # the same memory, counted in pages
    expected = min(max(ram // MB // 4, 128), 4096)
    assert memory_conf() == memory_conf(ram)
    assert memory_conf()["shared_buffers"] == f"'{expected}MB'"
    assert memory_conf()["effective_cache_size"] == f"'{max(ram // MB * 3 // 4, expected)}MB'"
