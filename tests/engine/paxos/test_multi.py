"""Multi-Paxos ("Paxos Made Simple", §3), message by message."""

import orjson

from .harness import Net


def elect(net: Net, nid: str = "n1") -> None:
    """nid's election timer fires; its Prepares and the Promises are delivered; it leads."""
    net.fire(nid, "election")
    net.deliver_all("Prepare", src=nid)
    net.deliver_all("Promise", dst=nid)
    assert net.nodes[nid].phase == "leading"
    net.deliver_all("Heartbeat", src=nid)


def write(net: Net, leader: str, req: int, value, key: str = "k1", client: str = "c1") -> None:
    net.request(leader, client, req, "write", key, value)


def test_a_leader_runs_phase_1_once_and_phase_2_per_slot():
    """§3: "the leader ... executes phase 1 for infinitely many instances"; each command then
    needs only phase 2."""
    net = Net(3, mode="multi")
    elect(net)
    assert net.nodes["n2"].leader_id == "n1" and net.nodes["n3"].leader_id == "n1"
    write(net, "n1", 1, 10)
    write(net, "n1", 2, 20)
    assert not net.find("Prepare")
    assert [m["slot"] for *_, m in net.find("Accept", dst="n2")] == [0, 1]
    net.settle()
    for nid in ("n1", "n2", "n3"):
        node = net.nodes[nid]
        assert node.commit == 2 and node.applied == 2 and node.store.kv == {"k1": 20}
    assert [m for to, m in net.replies] == [
        {"kind": "ClientReply", "req": 1, "ok": True, "value": 10},
        {"kind": "ClientReply", "req": 2, "ok": True, "value": 20}]
    assert not net.violations


def test_followers_redirect_clients_with_a_hint():
    """The same client protocol as Raft's servers (engine/clients.py follows the hint)."""
    net = Net(3, mode="multi")
    net.request("n2", "c1", 1, "read")
    assert net.replies[-1] == ("c1", {"kind": "ClientReply", "req": 1, "ok": False,
                                      "error": "not_leader", "leader": None})
    elect(net)
    net.request("n2", "c1", 2, "read")
    assert net.replies[-1][1]["leader"] == "n1"


def test_reads_go_through_the_log():
    net = Net(3, mode="multi")
    elect(net)
    write(net, "n1", 1, 5)
    net.request("n1", "c1", 2, "read")
    assert [m["value"]["op"] for *_, m in net.find("Accept", dst="n2")] == ["write", "read"]
    net.settle()
    assert net.replies[-1][1] == {"kind": "ClientReply", "req": 2, "ok": True, "value": 5}


def test_a_duplicated_request_is_executed_once():
    """Raft §8 sessions: a request the leader already executed is answered from the session table,
    not proposed again."""
    net = Net(3, mode="multi")
    elect(net)
    net.request("n1", "c1", 1, "cas", value=[None, 1])
    net.settle()
    net.request("n1", "c1", 1, "cas", value=[None, 1])
    assert not net.find("Accept")
    assert [m["ok"] for _, m in net.replies] == [True, True]


def test_a_new_leader_reproposes_reported_values_and_fills_gaps_with_no_ops():
    """§3: the new leader learns from phase 1 what was accepted in each slot, proposes it again at
    its own ballot, and proposes a no-op in a gap. Slot 1's Accepts were all lost; slot 2's
    reached n2 only."""
    net = Net(3, mode="multi")
    elect(net)
    write(net, "n1", 1, 10)
    net.settle()
    write(net, "n1", 2, 20)
    net.drop("Accept", slot=1)
    write(net, "n1", 3, 30)
    net.drop("Accept", slot=2, dst="n3")
    net.deliver("Accept", slot=2, dst="n2")
    net.crash("n1")
    net.drop()
    net.fire("n2", "election")
    prepare = net.find("Prepare", src="n2")[0][3]
    assert prepare["ballot"] == [2, "n2"] and prepare["slot"] == 1  # n2 learned slot 0
    net.deliver("Prepare", src="n2", dst="n3")
    net.deliver("Promise", src="n3", dst="n2")
    accepts = {m["slot"]: m["value"] for *_, m in net.find("Accept", src="n2", dst="n3")}
    assert accepts[1] is None  # the gap: a no-op
    assert accepts[2]["value"] == 30  # reported by n2's own promise (accepted at 1.n1)
    net.settle()
    assert net.nodes["n3"].store.kv == {"k1": 30} and net.nodes["n3"].commit == 3
    assert not net.violations


def test_a_lagging_learner_catches_up_after_a_restart():
    """Learned values are volatile; a restarted node sees the leader's commit in a Heartbeat, asks
    with CatchUp and learns the chosen values; its acceptor state survived."""
    net = Net(3, mode="multi")
    elect(net)
    for req in (1, 2, 3):
        write(net, "n1", req, req * 10)
    net.settle()
    net.crash("n3")
    net.restart("n3")
    n3 = net.nodes["n3"]
    assert n3.learned == {} and n3.commit == 0 and sorted(n3.accepted) == [0, 1, 2]
    assert n3.promised == (1, "n1")
    net.tick_us(60_000)
    net.fire("n1", "heartbeat")
    net.deliver("Heartbeat", dst="n3")
    catch_up = net.find("CatchUp", src="n3")[0][3]
    assert catch_up["slot"] == 0
    net.settle()
    assert n3.commit == 3 and n3.store.kv == {"k1": 30}
    assert not net.violations


def test_lost_accepts_are_sent_again_with_the_heartbeat():
    net = Net(3, mode="multi")
    elect(net)
    write(net, "n1", 1, 10)
    net.drop("Accept")
    assert net.nodes["n1"].commit == 0
    net.tick_us(60_000)
    net.fire("n1", "heartbeat")
    assert {d for _, _, d, _ in net.find("Accept", slot=0)} == {"n2", "n3"}
    net.settle()
    assert net.nodes["n1"].commit == 1


def test_a_stale_leader_steps_aside_on_a_nack():
    """n1 leads at 1.n1; n2 runs phase 1 at 2.n2 with n3 while n1 hears nothing. n1's next
    heartbeat is refused by n3 with a Nack naming 2.n2, and n1 stops leading."""
    net = Net(3, mode="multi")
    elect(net)
    net.fire("n2", "election")
    net.drop("Prepare", src="n2", dst="n1")
    net.deliver("Prepare", src="n2", dst="n3")
    net.deliver("Promise", src="n3", dst="n2")
    assert net.nodes["n2"].phase == "leading"
    net.drop("Heartbeat", src="n2")
    net.fire("n1", "heartbeat")
    net.deliver("Heartbeat", src="n1", dst="n3")
    nack = net.find("Nack", src="n3", dst="n1")[0][3]
    assert nack["promised"] == [2, "n2"]
    net.deliver("Nack", src="n3", dst="n1")
    assert net.nodes["n1"].phase == "idle" and net.nodes["n1"].role == "proposer"
    assert net.nodes["n1"].max_round == 2  # its next ballot jumps above 2.n2


def test_a_higher_prepare_makes_a_leader_step_aside_and_pending_clients_wait():
    net = Net(3, mode="multi")
    elect(net)
    write(net, "n1", 1, 10)
    net.drop("Accept")
    net.fire("n2", "election")
    net.deliver("Prepare", src="n2", dst="n1")
    n1 = net.nodes["n1"]
    assert n1.phase == "idle" and n1.pending == {} and "election" in net.timers["n1"]


def test_state_records_and_view():
    net = Net(3, mode="multi")
    elect(net)
    write(net, "n1", 1, 10)
    net.settle()
    n1 = [r for r in net.records if r["type"] == "state" and r["node"] == "n1"]
    assert n1[-1]["role"] == ["leader", "acceptor", "learner"]
    assert any(r.get("learned") == {"0": {"client": "c1", "req": 1, "op": "write", "key": "k1",
                                            "value": 10}} for r in n1)
    leading = next(r for r in n1 if r["phase"] == "leading")
    assert leading["ballot"] == [1, "n1"] and leading["promised"] == [1, "n1"]
    v = net.nodes["n1"].view(0)
    orjson.dumps(v)
    orjson.dumps(net.nodes["n1"].digest_state())
    assert v["leader"] and v["commit"] == 1 and v["accepted"]["0"][0] == [1, "n1"]
    assert v["window"] == [0, 1] and v["kv"] == {"k1": 10}
