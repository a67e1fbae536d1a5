"""The benchmark's own parts: the load generator's payloads are valid, distinct readings (so
'stored == published' means something), and /proc accounting sees this process."""

import os
import time

from agri.bench.ingest import procstat
from agri.bench.ingest.loadgen import LoadSpec, build_messages
from kernel.decode import decode_message
from kernel.protocol import Limits


def spec(**kw: object) -> LoadSpec:
    base = {
        "mqtt_url": "mqtt://h",
        "client_id": "c",
        "nodes": [("farm-a", "n-1"), ("farm-a", "n-2"), ("farm-b", "n-3")],
        "msgs_per_node": 4,
        "msg_rate": 1.0,
        "start_at": 0.0,
        "t0": float(int(time.time()) - 86400),
    }
    return LoadSpec(**(base | kw))  # type: ignore[arg-type]


def test_direct_payloads_decode_into_distinct_valid_readings() -> None:
    s = spec()
    msgs = build_messages(s)
    assert len(msgs) == 12
    keys = set()
    for topic, payload, ids in msgs:
        d = decode_message(topic, payload, Limits(now=time.time()))
        assert d.rejects == [] and len(d.accepted) == 1 and d.accepted[0].msg.rejected == []
        (a,) = d.accepted
        assert [(a.msg.farm, a.msg.node, a.msg.seq)] == ids
        assert len(a.msg.readings) == s.readings_per_msg
        keys |= {(r.node, r.metric, r.t) for r in a.msg.readings if r.metric not in ("bat_v", "rssi_dbm")}
    assert len(keys) == 12 * s.samples * len(s.metrics)


def test_batch_path_wraps_every_node_message_in_gateway_envelopes() -> None:
    msgs = build_messages(spec(via_batch=3))
    node_msgs = []
    for topic, payload, ids in msgs:
        assert "/gw/" in topic
        d = decode_message(topic, payload, Limits(now=time.time()))
        assert d.rejects == []
        got = [(a.msg.farm, a.msg.node, a.msg.seq) for a in d.accepted]
        assert got == ids
        node_msgs += got
    assert len(node_msgs) == 12 and len(set(node_msgs)) == 12


def test_procstat_sees_this_process() -> None:
    sum(i * i for i in range(200_000))
    assert os.getpid() in procstat.tree(os.getpid())
    assert procstat.cpu_seconds([os.getpid()]) > 0
    busy, total = procstat.machine_cpu_seconds()
    assert 0 < busy <= total
