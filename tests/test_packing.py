"""Planning packs: dispatch classes, fair order, limits, lingering and sizing."""

from __future__ import annotations

from datetime import timedelta

from gateway.models import utcnow
from hpc_jobs.packing import SOLO, Candidate, PackLimits, dispatch_class, plan_packs, size_pack
from hpc_jobs.profiles import load_profile
from hpc_jobs.sizing import size_job

NOW = utcnow()
LIMITS = PackLimits(max_jobs=4, max_seconds=10, linger_seconds=0.5, max_linger_seconds=5)


def _jobs(user, n, *, klass="dev|CPU|statevector|double", age=10.0, runtime=1, start=0):
    return [Candidate(f"{user}-{i}", user, NOW - timedelta(seconds=age) + timedelta(milliseconds=i), klass, runtime,
                      start + i + 1) for i in range(n)]


def test_one_users_flood_delays_another_user_by_at_most_one_pack():
    flood = _jobs("alice", 2000)
    single = [Candidate("bob-0", "bob", NOW - timedelta(seconds=1), flood[0].dispatch_class, 1, 1)]
    packs = plan_packs(flood + single, LIMITS, now=NOW, max_packs=2)
    assert "bob-0" in packs[0].job_ids
    assert packs[0].job_ids[:2] == ("alice-0", "bob-0")


def test_packs_respect_their_count_and_runtime_budget():
    packs = plan_packs(_jobs("a", 9, runtime=1), LIMITS, now=NOW, max_packs=10)
    assert [len(p.job_ids) for p in packs] == [4, 4, 1]
    heavy = plan_packs(_jobs("a", 4, runtime=6), LIMITS, now=NOW, max_packs=10)
    assert [len(p.job_ids) for p in heavy] == [1, 1, 1, 1]


def test_the_live_bound_caps_the_packs_planned():
    assert len(plan_packs(_jobs("a", 40), LIMITS, now=NOW, max_packs=3)) == 3
    assert plan_packs(_jobs("a", 40), LIMITS, now=NOW, max_packs=0) == []


def test_a_class_still_filling_lingers_until_quiet_or_full_or_old():
    arriving = _jobs("a", 2, age=0.1)
    assert plan_packs(arriving, LIMITS, now=NOW, max_packs=5) == []
    assert len(plan_packs(_jobs("a", 4, age=0.1), LIMITS, now=NOW, max_packs=5)) == 1
    quiet = plan_packs(arriving, LIMITS, now=NOW + timedelta(seconds=1), max_packs=5)
    assert [len(p.job_ids) for p in quiet] == [2]


def test_a_users_stream_of_mixed_circuits_fills_each_class_instead_of_cutting_at_its_gaps():
    clifford = "dev|CPU|stabilizer|double"
    # Alice's last Clifford circuit came 2 s ago, but she is still sending others.
    stream = _jobs("alice", 2, klass=clifford, age=2.0) + _jobs("alice", 2, age=0.1, start=2)
    assert plan_packs(stream, LIMITS, now=NOW, max_packs=5) == []
    quiet = plan_packs(stream, LIMITS, now=NOW + timedelta(seconds=1), max_packs=5)
    assert sorted(len(p.job_ids) for p in quiet) == [2, 2]
    old = plan_packs(stream, LIMITS, now=NOW + timedelta(seconds=3.5), max_packs=5)
    assert [p.dispatch_class for p in old] == [clifford, stream[2].dispatch_class]


def test_another_users_stream_never_holds_back_a_single_circuit():
    stream = _jobs("alice", 2, age=0.1)
    single = _jobs("bob", 1, klass="dev|CPU|stabilizer|double", age=1.0)
    packs = plan_packs(stream + single, LIMITS, now=NOW, max_packs=5)
    assert [p.job_ids for p in packs] == [("bob-0",)]


def test_the_rest_after_a_full_pack_lingers_like_any_partial_pack():
    arriving = _jobs("a", 6, age=0.1)
    assert [p.job_ids for p in plan_packs(arriving, LIMITS, now=NOW, max_packs=5)] == [("a-0", "a-1", "a-2", "a-3")]
    later = plan_packs(arriving, LIMITS, now=NOW + timedelta(seconds=5), max_packs=5)
    assert [len(p.job_ids) for p in later] == [4, 2]


def test_a_lingering_class_takes_no_place_from_a_ready_one():
    arriving = _jobs("a", 2, age=0.1)
    waiting = _jobs("b", 2, klass="dev|CPU|stabilizer|double", age=10.0)
    packs = plan_packs(arriving + waiting, LIMITS, now=NOW, max_packs=1)
    assert [p.job_ids for p in packs] == [("b-0", "b-1")]


def test_big_jobs_run_alone_and_classes_never_mix():
    solo = _jobs("a", 2, klass=SOLO)
    other = _jobs("b", 2, klass="dev|CPU|stabilizer|double")
    packs = plan_packs(solo + other + _jobs("c", 2), LIMITS, now=NOW, max_packs=10)
    assert sorted(len(p.job_ids) for p in packs) == [1, 1, 2, 2]
    assert all(len({job.split("-")[0] for job in p.job_ids}) == 1 for p in packs)


def test_dispatch_class_separates_small_from_big_and_methods():
    profile = load_profile("dev")
    small = size_job(profile, num_qubits=5, num_operations=20, shots=1024, clifford=False)
    clifford = size_job(profile, num_qubits=5, num_operations=20, shots=1024, clifford=True)
    big = size_job(profile, num_qubits=29, num_operations=2000, shots=1024, clifford=False)
    limits = PackLimits(max_state_bytes=1 << 30, max_job_seconds=120)
    assert dispatch_class(profile, small, limits, runtime_seconds=1) != dispatch_class(profile, clifford, limits,
                                                                                       runtime_seconds=1)
    assert dispatch_class(profile, big, limits, runtime_seconds=1) == SOLO
    assert dispatch_class(profile, small, limits, runtime_seconds=500) == SOLO


def test_a_packs_time_limit_covers_the_sum_of_its_jobs():
    profile = load_profile("dev")
    members = [size_job(profile, num_qubits=5, num_operations=20, shots=1024, clifford=False)] * 300
    pack = size_pack(profile, members)
    hours, minutes, seconds = (int(x) for x in pack.time_limit.split(":"))
    assert hours * 3600 + minutes * 60 + seconds >= 2 * pack.estimated_runtime_seconds
    assert pack.estimated_runtime_seconds >= 300
    assert size_pack(profile, members[:1]) == members[0]
