import os
import time

import numpy as np
import pytest
from apps_for_tests import paced

import shoal
from shoal.policy.forecast import Lookahead
from shoal.policy.granularity import Candidate, ControllerConfig, GranularityController
from shoal.runtime.arrival_log import ArrivalLog, ArrivalLogError
from shoal.runtime.errors import NotFound
from shoal.runtime.host import HostConfig
from shoal.testing import wait_until

WALL = 1.8e9  # a wall-clock time, seconds


def test_arrivals_come_back_on_the_new_hosts_clock_within_the_look_back(tmp_path):
    log = ArrivalLog(tmp_path / "a.npy")
    # the old host: its clock read 100 at WALL; arrivals 40 s to 100 s on it
    assert log.write(np.arange(40.0, 100.0, 0.5), now=100.0, keep_s=30.0, wall=WALL) == 59  # 70.5 ... 99.5
    # the new host started 20 s after: its clock reads 5 at WALL + 25 -> old time t is t - 120 on it
    back = log.read(now=5.0, keep_s=60.0, wall=WALL + 25.0)
    np.testing.assert_allclose(back.times, np.arange(70.5, 100.0, 0.5) - 120.0)
    assert back.times.max() < 0  # before the new host started
    assert log.read(now=5.0, keep_s=40.0, wall=WALL + 25.0).times.min() > 5.0 - 40.0  # only the last keep_s
    assert log.read(now=5.0, keep_s=10.0, wall=WALL + 25.0).times.size == 0
    # observed from 70 (the look-back written), not while down: from the last write (old 100) to the restart
    assert back.since == pytest.approx(70.0 - 120.0)
    np.testing.assert_allclose(back.unseen, [(-20.0, 5.0)])


def test_no_log_yet_is_an_empty_past(tmp_path):
    nothing = ArrivalLog(tmp_path / "none.npy").read(now=0.0, keep_s=60.0)
    assert nothing.times.size == 0 and nothing.since == 0.0 and nothing.unseen == ()


def test_arrivals_logged_after_the_wall_clock_now_are_left_out(tmp_path):
    log = ArrivalLog(tmp_path / "a.npy")
    log.write([1.0, 2.0, 3.0], now=3.0, keep_s=10.0, wall=WALL)
    back = log.read(now=0.0, keep_s=60.0, wall=WALL - 1.5)  # the wall clock went back 1.5 s
    np.testing.assert_allclose(back.times, [-0.5])
    assert back.unseen == ()  # not down: the clock went back


def test_a_file_that_is_not_an_arrival_log_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "a.npy"
    path.write_text("not numpy")
    with pytest.raises(ArrivalLogError, match="move it away or delete it"):
        ArrivalLog(path).read(now=0.0, keep_s=10.0)
    np.save(path, np.array([{"code": "x"}], dtype=object), allow_pickle=True)  # a pickle: never loaded
    with pytest.raises(ArrivalLogError, match="Object arrays cannot be loaded"):
        ArrivalLog(path).read(now=0.0, keep_s=10.0)
    for bad in (np.zeros((2, 2)), np.array([1, 2, 3]), np.array([1.0, np.nan])):
        np.save(path, bad)
        with pytest.raises(ArrivalLogError, match="is not an arrival log"):
            ArrivalLog(path).read(now=0.0, keep_s=10.0, wall=WALL)


def test_spans_not_observed_are_kept_over_restarts_and_the_downtime_added(tmp_path):
    """A loop that was down from 30 to 40 on its clock writes that span with its arrivals; a restart 5 s after the
    last write gets it back, and the 5 s since the write, on its clock."""
    log = ArrivalLog(tmp_path / "a.npy")
    arrivals = [t for t in np.arange(0.0, 60.0, 0.5) if not 30.0 <= t < 40.0]
    log.write(arrivals, now=60.0, keep_s=50.0, wall=WALL, since=20.0, unseen=[(30.0, 40.0), (0.0, 5.0)])
    back = log.read(now=0.0, keep_s=50.0, wall=WALL + 5.0)  # old time t is t - 65 on the new clock
    assert back.since == pytest.approx(20.0 - 65.0)  # observed since 20; the span (0, 5) before that is dropped
    np.testing.assert_allclose(back.unseen, [(30.0 - 65.0, 40.0 - 65.0), (-5.0, 0.0)])
    assert back.unseen_s == pytest.approx(15.0)
    log.write(arrivals, now=60.0, keep_s=50.0, wall=WALL, since=45.0)
    assert log.read(now=0.0, keep_s=50.0, wall=WALL + 5.0).since == pytest.approx(45.0 - 65.0)


def test_the_meters_state_is_kept_beside_the_arrivals_and_a_bad_one_refused(tmp_path):
    log = ArrivalLog(tmp_path / "a.npy")
    state = {
        "windows": {"coarse": [[8.0, 1.0, 1.1, 40, 40, 0.997]]},
        "tried": {"middle": [8.0]},
        "served_total": [40, 0],
    }
    log.write([1.0, 2.0], now=3.0, keep_s=10.0, wall=WALL, served=state)
    assert log.read(now=0.0, keep_s=60.0, wall=WALL).served == state
    log.write([1.0, 2.0], now=3.0, keep_s=10.0, wall=WALL)  # no meter: none kept
    assert log.read(now=0.0, keep_s=60.0, wall=WALL).served is None
    for bad in (np.array([1.0, 2.0]), np.array("[1, 2]"), np.array("{not json")):
        np.savez(
            tmp_path / "b.npz",
            arrivals=np.array([1.0]),
            covered=np.array([0.0, 2.0]),
            unseen=np.empty((0, 2)),
            served=bad,
        )
        with pytest.raises(ArrivalLogError, match="its meter state"):
            ArrivalLog(tmp_path / "b.npz").read(now=0.0, keep_s=10.0, wall=WALL)


def test_a_log_of_one_array_is_read_as_observed_from_its_first_arrival_to_its_last(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, WALL + np.array([1.0, 2.0, 4.0]))  # as Shoal wrote arrival logs before stop 21
    back = ArrivalLog(path).read(now=0.0, keep_s=60.0, wall=WALL + 10.0)
    np.testing.assert_allclose(back.times, [-9.0, -8.0, -6.0])
    assert back.since == pytest.approx(-9.0)
    np.testing.assert_allclose(back.unseen, [(-6.0, 0.0)])
    np.save(path, np.empty(0))
    assert ArrivalLog(path).read(now=0.0, keep_s=60.0, wall=WALL).since == 0.0


def test_a_log_with_bad_spans_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "a.npy"
    good = {"arrivals": np.array([WALL]), "covered": np.array([WALL - 1, WALL + 1]), "unseen": np.empty((0, 2))}
    for bad in ({"covered": np.array([WALL])}, {"unseen": np.array([[WALL, WALL - 1]])}, {"unseen": None}):
        parts = {k: v for k, v in (good | bad).items() if v is not None}
        with path.open("wb") as f:
            np.savez(f, **parts)
        with pytest.raises(ArrivalLogError, match=r"is not an arrival log.*delete"):
            ArrivalLog(path).read(now=0.0, keep_s=10.0, wall=WALL + 2)


def test_bad_paths_and_look_backs_are_refused(tmp_path):
    with pytest.raises(ArrivalLogError, match="is a folder"):
        ArrivalLog(tmp_path)
    with pytest.raises(ArrivalLogError, match="create it first"):
        ArrivalLog(tmp_path / "missing" / "a.npy")
    log = ArrivalLog(tmp_path / "a.npy")
    for keep in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ArrivalLogError, match="keep_s"):
            log.read(now=0.0, keep_s=keep)


def test_a_failed_write_keeps_the_previous_log_and_says_so(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    log = ArrivalLog(folder / "a.npy")
    log.write([1.0, 2.0], now=2.0, keep_s=10.0, wall=WALL)
    (folder / f".a.npy.{os.getpid()}.partial").mkdir()  # a folder where the new log is written first
    with pytest.raises(ArrivalLogError, match="cannot write the arrival log"):
        log.write([5.0], now=5.0, keep_s=10.0, wall=WALL + 3)
    np.testing.assert_allclose(log.read(now=3.0, keep_s=10.0, wall=WALL + 1).times, [1.0, 2.0])


def test_the_host_takes_a_past_before_what_it_has_seen():
    with shoal.local(paced, "coarse", HostConfig(tick_s=0.05)) as svc:
        host = svc.host
        svc.invoke([1.0])
        seen = host.arrivals_of("paced")
        host.seed_arrivals("paced", [-3.0, -2.0, seen[0] + 1.0])  # one not before what was seen: left out
        assert host.arrivals_of("paced") == [-3.0, -2.0, *seen]
        with pytest.raises(ValueError, match="oldest first"):
            host.seed_arrivals("paced", [-10.0, -20.0])
        with pytest.raises(NotFound, match="no application named 'nope'"):
            host.seed_arrivals("nope", [-1.0])


def rule(load, plans) -> list[Candidate]:
    busy = load.rate >= 40
    return [Candidate("coarse", 0.90 if busy else 0.999, 1.0), Candidate("fine", 0.999, 2.0)]


def test_a_restarted_loop_forecasts_from_the_logged_traffic_at_once(tmp_path):
    """Bursts every 4 s were served before the restart; the new loop's first window already holds a forecast of
    that period, with no request sent to it, and on stop the log holds the look-back again."""
    path = tmp_path / "arrivals.npy"
    t = np.concatenate([np.arange(k * 4.0, k * 4.0 + 1.0, 1 / 70) for k in range(4)])  # 70 req/s, 1 s in 4
    t = np.sort(np.concatenate([t, np.arange(0.0, 16.0, 1 / 15)]))
    ArrivalLog(path).write(t, now=16.0, keep_s=16.0, wall=time.time())
    controller = GranularityController(ControllerConfig(confirm_windows=2, min_dwell_s=0))
    with shoal.local(paced, "coarse", HostConfig(tick_s=0.05)) as svc:
        look = Lookahead(14.0, bin_s=0.25)
        log = ArrivalLog(path)
        loop = svc.adapt(["coarse", "fine"], rule, controller, window_s=0.5, lookahead=look, arrival_log=log)
        wait_until(lambda: any("forecast" in e for e in loop.history), timeout=10, message="a forecast window")
        restored = loop.history[0]
        assert restored["restored_arrivals"] > 0.8 * t[t > 2.0].size and restored["from"] == str(path)
        first = next(e for e in loop.history if "forecast" in e)
        assert first["forecast"]["period_s"] == pytest.approx(4.0, abs=0.3)
        assert first["load"]["count"] == 0  # nothing served yet: the period came from the log
    kept = ArrivalLog(path).read(now=0.0, keep_s=60.0).times
    assert kept.size > 0 and np.all(np.diff(kept) >= 0) and kept.max() < time.time()


def test_a_restart_gets_back_the_arrivals_served_before_it(tmp_path):
    path = tmp_path / "arrivals.npy"
    with shoal.local(paced, "coarse", HostConfig(tick_s=0.05)) as svc:
        svc.adapt(["coarse"], rule, window_s=0.2, horizon_s=30.0, arrival_log=ArrivalLog(path))
        for i in range(25):
            svc.invoke([float(i)])
    served = ArrivalLog(path).read(now=0.0, keep_s=60.0).times
    assert served.size == 25
    with shoal.local(paced, "coarse", HostConfig(tick_s=0.05)) as svc:
        loop = svc.adapt(["coarse"], rule, window_s=0.2, horizon_s=30.0, arrival_log=ArrivalLog(path))
        wait_until(lambda: bool(loop.history), timeout=5)
        assert loop.history[0]["restored_arrivals"] == 25
        before = [t for t in svc.host.arrivals_of("paced") if t < 0]
        assert len(before) == 25
        np.testing.assert_allclose(np.diff(before), np.diff(served), atol=1e-6)


def test_a_restart_after_downtime_reads_the_logged_horizon_at_once_and_leaves_the_downtime_out(tmp_path):
    """The log of 60 s of steady traffic at 20 req/s, written 3 s before the restart: the new loop's first window
    scores a whole 60-s horizon, the logged traffic with the time down taken out (its rate the traffic's, not a
    twentieth lower, and no burst read), with no request sent to it yet."""
    path = tmp_path / "arrivals.npy"
    written = time.time() - 3.0
    ArrivalLog(path).write(np.arange(0.0, 60.0, 0.05), now=60.0, keep_s=60.0, wall=written, since=0.0)
    with shoal.local(paced, "coarse", HostConfig(tick_s=0.05)) as svc:
        loop = svc.adapt(
            ["coarse"], rule, window_s=0.5, horizon_s=60.0, horizon_as="load", arrival_log=ArrivalLog(path)
        )
        wait_until(lambda: any("horizon_load" in e for e in loop.history), timeout=10, message="a horizon")
        down, started = loop.history[0]["unseen_s"], loop.history[0]["t"]  # 3 s, and the server's start
        assert 3.0 <= down <= time.time() - written
        entry = next(e for e in loop.history if "horizon_load" in e)
        first, now = entry["horizon_load"], entry["t"]
        assert first["window_s"] == pytest.approx(60.0) and first["unseen_s"] == pytest.approx(down, abs=0.01)
        # the logged 20 req/s over the horizon's seconds observed (the time since the restart was quiet)
        assert first["rate"] == pytest.approx(20.0 * (60.0 - down - (now - started)) / (60.0 - down), rel=0.01)
        assert first["burst"] < 0.01
    after = ArrivalLog(path).read(now=0.0, keep_s=60.0)  # the downtime is in the log it left
    assert len(after.unseen) == 2 and after.unseen[0][1] - after.unseen[0][0] == pytest.approx(down, abs=0.01)


def test_an_unreadable_log_is_said_and_the_loop_starts_from_nothing(tmp_path):
    path = tmp_path / "arrivals.npy"
    path.write_text("garbage")
    with shoal.local(paced, "coarse", HostConfig(tick_s=0.05)) as svc:
        loop = svc.adapt(["coarse"], rule, window_s=0.2, horizon_s=10.0, arrival_log=ArrivalLog(path))
        wait_until(lambda: len(loop.history) >= 2, timeout=5)
        assert "move it away or delete it" in loop.history[0]["error"]
        assert svc.invoke([1.0]).tolist() == [9.0]
    assert ArrivalLog(path).read(now=0.0, keep_s=60.0).times.size == 1  # replaced by what was served since


def test_a_restarted_loop_keeps_what_its_meter_learned(tmp_path):
    """A loop with the meter serves a few seconds; the next one, from the same log, starts with the plan's metered
    windows and the error budget's ledger instead of from nothing."""
    import threading

    from shoal.policy.served import ServedCosts

    path = tmp_path / "arrivals.npy"
    config = HostConfig(tick_s=0.05)
    with shoal.local(paced, "coarse", config) as svc:
        served = ServedCosts(min_windows=2, settle_s=0.4, slo_trials=True)
        loop = svc.adapt(["coarse"], rule, window_s=0.2, horizon_s=10.0, arrival_log=ArrivalLog(path), served=served)
        stop = threading.Event()

        def drive() -> None:
            while not stop.is_set():
                svc.invoke([1.0])
                time.sleep(0.02)

        driver = threading.Thread(target=drive)
        driver.start()
        try:
            wait_until(lambda: served.windows("coarse") >= 3, timeout=15, message="three metered windows")
        finally:
            stop.set()
            driver.join()
    kept = ArrivalLog(path).read(now=0.0, keep_s=60.0).served
    assert kept is not None and len(kept["windows"]["coarse"]) >= 3 and kept["served_total"][0] > 0
    with shoal.local(paced, "coarse", config) as svc:
        again = ServedCosts(min_windows=2, settle_s=0.4, slo_trials=True)
        loop = svc.adapt(["coarse"], rule, window_s=0.2, horizon_s=10.0, arrival_log=ArrivalLog(path), served=again)
        wait_until(lambda: bool(loop.history), timeout=5)
        assert loop.history[0]["restored_served_windows"] == len(kept["windows"]["coarse"])
        assert again.ratio("coarse", kept["windows"]["coarse"][0][0]) is not None  # priced by the meter at once
        assert again.served_total[0] >= kept["served_total"][0]
