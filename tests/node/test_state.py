"""The node's state database on SQLite and MariaDB: series through their statuses, results until sent."""

from __future__ import annotations

from dltk2.node.state import COMPLETE, DONE, PROCESSING, RECEIVING, NodeState, SeriesInfo

CT = SeriesInfo("1.2.3.1", "1.2.3", "CT", "ABDOMEN", "abdomen")


def test_a_series_completes_on_release_or_after_its_quiet_period(database_url):
    state = NodeState(database_url)
    assert state.record_instance("1.2.3.1.1", "1.2.840.10008.5.1.4.1.1.2", CT, "a.dcm", "CT01", now=100.0)
    assert not state.record_instance("1.2.3.1.1", "1.2.840.10008.5.1.4.1.1.2", CT, "a.dcm", "CT01", now=101.0)
    assert state.record_instance("1.2.3.1.2", "1.2.840.10008.5.1.4.1.1.2", CT, "b.dcm", "CT01", now=102.0)
    assert state.instance_count() == 2 and state.instance_paths(CT.series_instance_uid) == ["a.dcm", "b.dcm"]
    assert state.claim_ready(quiet_period_s=10, now=111.0) is None  # 9 s of quiet: still receiving
    claimed = state.claim_ready(quiet_period_s=10, now=112.0)
    assert claimed.series_instance_uid == CT.series_instance_uid and claimed.status == PROCESSING
    assert claimed.instance_count == 2 and claimed.attempts == 1
    state.finish(CT.series_instance_uid, DONE, "1 result")
    assert state.status_of(CT.series_instance_uid) == DONE

    other = SeriesInfo("1.2.3.2", "1.2.3", "CT")
    state.record_instance("1.2.3.2.1", "1.2.840.10008.5.1.4.1.1.2", other, "c.dcm", "CT01")
    state.complete({other.series_instance_uid})
    assert state.status_of(other.series_instance_uid) == COMPLETE
    assert state.claim_ready(quiet_period_s=3600).series_instance_uid == other.series_instance_uid


def test_a_series_that_grows_is_processed_again_and_an_interrupted_one_resumes(database_url):
    state = NodeState(database_url)
    state.record_instance("1.2.3.1.1", "1.2.840.10008.5.1.4.1.1.2", CT, "a.dcm", "CT01")
    state.complete({CT.series_instance_uid})
    state.claim_ready(0)
    # An instance arrives while the series is processed: the finish does not hide it.
    state.record_instance("1.2.3.1.2", "1.2.840.10008.5.1.4.1.1.2", CT, "b.dcm", "CT01")
    state.finish(CT.series_instance_uid, DONE)
    assert state.status_of(CT.series_instance_uid) == RECEIVING
    state.complete({CT.series_instance_uid})
    assert state.claim_ready(0).instance_count == 2
    # Killed while processing: a new node on the same database puts it back in the queue.
    restarted = NodeState(database_url)
    assert restarted.reset_interrupted() == 1
    assert restarted.status_of(CT.series_instance_uid) == COMPLETE


def test_results_are_retried_until_sent(database_url):
    state = NodeState(database_url)
    state.add_result("1.9.1", CT.series_instance_uid, "tissue_seg", "seg.dcm")
    assert state.unsent_results() == [("1.9.1", CT.series_instance_uid, "seg.dcm")]
    state.sent("1.9.1", "ORTHANC@127.0.0.1:4242: association rejected")
    assert state.unsent_results() == [("1.9.1", CT.series_instance_uid, "seg.dcm")]
    assert state.unsent_results(max_attempts=1) == []
    state.sent("1.9.1")
    assert state.unsent_results() == []
    [row] = state.result_rows()
    assert row["sent"] and row["attempts"] == 2 and row["last_error"] == ""
