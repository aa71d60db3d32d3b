"""The private cluster the Cluster tests run on: three masters with a replica each."""

from __future__ import annotations

from tests.support.cluster import RedisCluster


def test_cluster_of_three_masters_with_a_replica_each_serves_keys_on_every_master() -> None:
    cluster = RedisCluster.start()
    try:
        client = cluster.client()
        for tag in ("a", "b", "c", "d", "e", "f"):
            client.set(f"{{{tag}}}:k", tag)
        # slots of a, b, c: 15495, 3300, 7365: one in each third of the slot range
        masters = {cluster.master_of(f"{{{tag}}}:k").port for tag in ("a", "b", "c")}
        assert len(cluster.master_ports()) == 3
        assert masters == set(cluster.master_ports())
        assert [client.get(f"{{{tag}}}:k") for tag in ("a", "b", "c")] == ["a", "b", "c"]
        client.close()
    finally:
        cluster.stop()
    assert cluster.live() == []
