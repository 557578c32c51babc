"""The sans-IO plan (`send_plan`) and the batch driver (`run_entries`), without any server.

Like h11's tests: a `PlanPair` plays the server. It feeds the plan a scripted answer for
each Send it yields (a list of replies, NotSent or Lost), answers each Pause with None
(advancing a fake clock instead of sleeping), and records every step, so each test reads
as: the calls, the scripted replies, then what was sent, in which order, and the outcome.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Callable, Generator, Iterable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from registry import transport
from registry.batch import Entry, run_entries
from registry.errors import (
    NOT_RUN,
    UNKNOWN,
    BatchOrderError,
    InvalidConfigError,
    InvalidHopError,
    OutcomeUnknownError,
    RootConflictError,
)
from registry.operations import Call, Operations, Program
from registry.transport import Durability, Lost, NotSent, Outcome, Pause, Send, Step, send_plan

T1, T2, T3 = (str(uuid.UUID(int=n, version=4)) for n in (1, 2, 3))
NEW_ID = str(uuid.UUID(int=99, version=4))
ADDRESS = "3999 127.0.0.1:6381"

Answer = list[Any] | NotSent | Lost
Scripted = Answer | Callable[[Send], Answer]


# ---------------------------------------------------------------- the scripted server


class FakeClock:
    """Stands in for time.monotonic in registry.transport; pauses advance it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class PlanPair:
    """Drives a plan with scripted answers and records every step it yields."""

    def __init__(self, plan: Generator[Step, Any, Outcome], clock: FakeClock | None = None) -> None:
        self.plan = plan
        self.clock = clock
        self.steps: list[Step] = []

    @property
    def sends(self) -> list[Send]:
        return [step for step in self.steps if isinstance(step, Send)]

    @property
    def pauses(self) -> list[Pause]:
        return [step for step in self.steps if isinstance(step, Pause)]

    def kinds(self) -> list[str]:
        return [type(step).__name__ for step in self.steps]

    def run(self, answers: Iterable[Scripted]) -> Outcome:
        """One answer per Send, in order; every answer must be used."""
        pending = iter(answers)
        used = 0
        try:
            step = next(self.plan)
            while True:
                self.steps.append(step)
                if isinstance(step, Pause):
                    if self.clock is not None:
                        self.clock.now += step.seconds
                    step = self.plan.send(None)
                    continue
                scripted = next(pending, None)
                assert scripted is not None, f"unexpected Send #{len(self.sends)}: {step.commands}"
                used += 1
                answer = scripted if isinstance(scripted, list | NotSent | Lost) else scripted(step)
                step = self.plan.send(answer)
        except StopIteration as done:
            if isinstance(answers, Sequence):
                assert used == len(answers), f"the plan ended after {used} of {len(answers)} answers"
            outcome: Outcome = done.value
            return outcome


def sha_of(source: str) -> str:
    return hashlib.sha1(source.encode("utf-8")).hexdigest()


def replies(*commands: Any) -> Callable[[Send], list[Any]]:
    """The server's answer to a Send: each load's SHA, then `commands` (one per command)."""
    return lambda send: [sha_of(source) for source in send.loads] + list(commands)


def lost(*commands: Any) -> Callable[[Send], Lost]:
    """The connection dropped after the loads' replies and `commands` arrived."""
    return lambda send: Lost(
        [sha_of(source) for source in send.loads] + list(commands), RedisConnectionError()
    )


def failed_loads(error: Exception, *commands: Any) -> Callable[[Send], list[Any]]:
    """Every SCRIPT LOAD answered `error` (EXECABORT), then `commands`."""
    return lambda send: [error] * len(send.loads) + list(commands)


def words(send: Send) -> list[str]:
    return [str(command[0]) for command in send.commands]


def sent(send: Send, calls: Sequence[Call[Any]], keys: Sequence[str]) -> list[int]:
    """Which call each EVALSHA / EVAL of `send` runs, by its script (SHA or source) and args."""
    out: list[int] = []
    for command in send.commands:
        if command[0] not in ("EVALSHA", "EVAL"):
            continue
        assert command[2] == len(keys) and tuple(command[3 : 3 + len(keys)]) == tuple(keys)
        args = tuple(command[3 + len(keys) :])
        owners = [
            i
            for i, call in enumerate(calls)
            if call.script is not None
            and command[1] == (call.script.sha if command[0] == "EVALSHA" else call.script.source)
            and call.args == args
        ]
        assert len(owners) == 1, f"{command[:2]} matches calls {owners}"
        out.append(owners[0])
    return out


def sources(*calls: Call[Any]) -> list[str]:
    return [call.script.source for call in calls if call.script is not None]


def shas(*calls: Call[Any]) -> set[str]:
    return {call.script.sha for call in calls if call.script is not None}


@pytest.fixture
def ops() -> Operations:
    return Operations(namespace="ns", ttl=60)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(transport, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def plan(
    ops: Operations,
    calls: Sequence[Call[Any]],
    loaded: set[str] | None = None,
    retry_seconds: float = 0.5,
    durability: Durability | None = None,
    clock: FakeClock | None = None,
) -> PlanPair:
    return PlanPair(
        send_plan(calls, ops.keys, durability, set() if loaded is None else loaded, retry_seconds), clock
    )


# ---------------------------------------------------------------- 1. all-or-none loads


def test_first_round_loads_every_distinct_script_then_runs_calls_in_order(ops: Operations) -> None:
    calls: list[Call[Any]] = [
        ops.lookup(T1),
        ops.get_or_create("a.b"),
        ops.lookup(T2),
        ops.extend_chain(T1, "x"),
    ]
    loaded: set[str] = set()
    pair = plan(ops, calls, loaded)
    outcome = pair.run([replies("a\x1fb", NEW_ID, None, T3)])

    (send,) = pair.sends
    assert pair.kinds() == ["Send"]
    assert send.loads == sources(calls[0], calls[1], calls[3])  # lookup loaded once
    assert words(send) == ["EVALSHA"] * 4
    assert sent(send, calls, ops.keys) == [0, 1, 2, 3]
    assert (send.node, send.asking) == (None, False)
    assert outcome.replies == ["a\x1fb", NEW_ID, None, T3]
    assert outcome.interrupted is None and outcome.acknowledged is None
    assert loaded == shas(*calls)


def test_no_loads_when_every_script_was_seen_loaded(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b")]
    pair = plan(ops, calls, shas(*calls))
    outcome = pair.run([replies("a\x1fb", NEW_ID)])

    (send,) = pair.sends
    assert send.loads == []
    assert sent(send, calls, ops.keys) == [0, 1]
    assert outcome.replies == ["a\x1fb", NEW_ID]


def test_some_scripts_known_loads_all_of_them(ops: Operations) -> None:
    # The fix for batch order after SCRIPT FLUSH: loading only the unknown scripts let
    # a flushed known one fail NOSCRIPT while a freshly loaded later one ran.
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b"), ops.extend_chain(T1, "x")]
    loaded = shas(calls[0], calls[2])
    pair = plan(ops, calls, loaded)
    pair.run([replies("a\x1fb", NEW_ID, T3)])

    (send,) = pair.sends
    assert send.loads == sources(*calls)
    assert sent(send, calls, ops.keys) == [0, 1, 2]


def test_calls_without_a_script_are_not_sent(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup("not-an-id"), ops.lookup(T1), ops.cleanup("nope")]
    assert calls[0].script is None and calls[2].script is None
    pair = plan(ops, calls)
    outcome = pair.run([replies("a\x1fb")])

    assert sent(pair.sends[0], calls, ops.keys) == [1]
    assert outcome.replies == [None, "a\x1fb", None]


def test_script_errors_are_results_not_failures(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.get_or_create("a.b"), ops.lookup(T1), ops.extend_chain(T1, "x")]
    pair = plan(ops, calls, shas(*calls))
    outcome = pair.run([replies(ResponseError("ROOTCONFLICT other"), "a\x1fb", ResponseError("BADHOP x"))])

    assert pair.kinds() == ["Send"]
    assert isinstance(outcome.replies[0], RootConflictError)
    assert outcome.replies[1] == "a\x1fb"
    assert isinstance(outcome.replies[2], InvalidHopError)
    assert outcome.interrupted is None


# ---------------------------------------------------------------- 2-3. NOSCRIPT


def test_noscript_on_a_suffix_resends_it_in_order_with_its_scripts_loaded(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b"), ops.extend_chain(T1, "x")]
    loaded = shas(*calls)
    pair = plan(ops, calls, loaded)
    noscript = NoScriptError("No matching script")
    outcome = pair.run([replies("a\x1fb", noscript, noscript), replies(NEW_ID, T3)])

    first, second = pair.sends
    assert pair.kinds() == ["Send", "Send"]  # no pause, no refresh for NOSCRIPT
    assert first.loads == []
    assert second.loads == sources(calls[1], calls[2])
    assert sent(second, calls, ops.keys) == [1, 2]
    assert outcome.replies == ["a\x1fb", NEW_ID, T3]
    assert outcome.interrupted is None
    # Forgotten on NOSCRIPT (the lookup script is no longer listed), refilled by the reload.
    assert loaded == shas(calls[1], calls[2])


def test_noscript_twice_then_the_sources_are_sent_with_eval(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.get_or_create("a.b"), ops.lookup(T1)]
    pair = plan(ops, calls)
    noscript = NoScriptError("No matching script")
    outcome = pair.run([replies(noscript, noscript), replies(noscript, noscript), replies(NEW_ID, "a\x1fb")])

    first, second, third = pair.sends
    assert first.loads == second.loads == sources(*calls)
    assert words(second) == ["EVALSHA", "EVALSHA"]
    assert third.loads == []
    assert words(third) == ["EVAL", "EVAL"]
    assert sent(third, calls, ops.keys) == [0, 1]
    assert outcome.replies == [NEW_ID, "a\x1fb"]


# ---------------------------------------------------------------- 4. MOVED / ASK / TRYAGAIN


def test_moved_on_a_suffix_refreshes_then_resends_to_the_owner(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b"), ops.extend_chain(T1, "x")]
    pair = plan(ops, calls, shas(*calls))
    outcome = pair.run([replies("a\x1fb", MovedError(ADDRESS), MovedError(ADDRESS)), replies(NEW_ID, T3)])

    assert pair.kinds() == ["Send", "Pause", "Send"]
    assert pair.pauses[0].refresh
    resend = pair.sends[1]
    assert (resend.node, resend.asking) == (None, False)
    assert sent(resend, calls, ops.keys) == [1, 2]
    assert outcome.replies == ["a\x1fb", NEW_ID, T3]


def test_ask_on_a_suffix_resends_to_the_named_node_with_asking(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b"), ops.extend_chain(T1, "x")]
    pair = plan(ops, calls, shas(*calls))
    noscript = NoScriptError("No matching script")
    outcome = pair.run(
        [
            replies("a\x1fb", AskError(ADDRESS), AskError(ADDRESS)),
            replies(NEW_ID, noscript),
            replies(T3),
        ]
    )

    assert pair.kinds() == ["Send", "Send", "Send"]
    asked, back = pair.sends[1], pair.sends[2]
    assert (asked.node, asked.asking) == (("127.0.0.1", 6381), True)
    assert sent(asked, calls, ops.keys) == [1, 2]
    # The redirection holds for one Send only.
    assert (back.node, back.asking) == (None, False)
    assert sent(back, calls, ops.keys) == [2]
    assert outcome.replies == ["a\x1fb", NEW_ID, T3]


@pytest.mark.parametrize(
    "error", [TryAgainError("TRYAGAIN Multiple keys request"), ClusterDownError("CLUSTERDOWN down")]
)
def test_tryagain_or_clusterdown_pauses_then_resends(ops: Operations, error: Exception) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b")]
    pair = plan(ops, calls, shas(*calls))
    outcome = pair.run([replies("a\x1fb", error), replies(NEW_ID)])

    assert pair.kinds() == ["Send", "Pause", "Send"]
    assert pair.pauses[0].seconds > 0 and pair.pauses[0].refresh
    assert sent(pair.sends[1], calls, ops.keys) == [1]
    assert outcome.replies == ["a\x1fb", NEW_ID]


def test_tryagain_past_the_budget_leaves_an_error_in_place(ops: Operations, clock: FakeClock) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b")]
    pair = plan(ops, calls, shas(*calls), clock=clock)
    outcome = pair.run(
        itertools.chain(
            [replies("a\x1fb", TryAgainError("TRYAGAIN"))], itertools.repeat(replies(TryAgainError("x")))
        )
    )

    assert outcome.replies[0] == "a\x1fb"
    assert isinstance(outcome.replies[1], ResponseError)
    assert "gave up re-sending get_or_create" in str(outcome.replies[1])
    assert outcome.interrupted is None
    assert sum(p.seconds for p in pair.pauses) == pytest.approx(0.5)  # the budget, no more


# ---------------------------------------------------------------- 5. not a suffix


@pytest.mark.parametrize("failure", [NoScriptError("No matching script"), MovedError(ADDRESS)])
@pytest.mark.parametrize("later", ["cleanup", "get_or_create"])
def test_failure_before_a_write_that_ran_stops_with_batch_order_error(
    ops: Operations, failure: Exception, later: str
) -> None:
    second = ops.cleanup(T2) if later == "cleanup" else ops.get_or_create("a.b")
    calls: list[Call[Any]] = [ops.lookup(T1), second]
    pair = plan(ops, calls, shas(*calls))
    outcome = pair.run([replies(failure, 1)])

    assert pair.kinds() == ["Send"]  # nothing re-sent
    assert outcome.interrupted is BatchOrderError
    assert outcome.replies[0] is NOT_RUN
    assert outcome.replies[1] == 1
    assert "lookup (operation 0" in outcome.message


def test_failure_before_a_read_that_ran_is_resent_when_only_reads_are_involved(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.lookup(T2), ops.lookup(T3)]
    loaded = shas(*calls)
    pair = plan(ops, calls, loaded)
    noscript = NoScriptError("No matching script")
    outcome = pair.run([replies(noscript, "b", noscript), replies("a", "c")])

    assert pair.kinds() == ["Send", "Send"]
    assert pair.sends[1].loads == sources(calls[0])
    assert sent(pair.sends[1], calls, ops.keys) == [0, 2]
    assert outcome.replies == ["a", "b", "c"]
    assert outcome.interrupted is None


def test_out_of_order_with_a_lost_connection_marks_the_rest_unknown(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b"), ops.extend_chain(T1, "x")]
    pair = plan(ops, calls, shas(*calls))
    outcome = pair.run([lost(NoScriptError("No matching script"), NEW_ID)])

    assert pair.kinds() == ["Send"]
    assert outcome.interrupted is BatchOrderError
    assert outcome.replies == [NOT_RUN, NEW_ID, UNKNOWN]


# ---------------------------------------------------------------- 6. lost connection


def test_lost_with_a_removal_unreplied_is_not_resent(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.extend_chain(T1, "x"), ops.cleanup(T2)]
    pair = plan(ops, calls)
    outcome = pair.run([lost("a\x1fb")])

    assert pair.kinds() == ["Send"]
    assert outcome.interrupted is OutcomeUnknownError
    assert outcome.replies == ["a\x1fb", UNKNOWN, UNKNOWN]
    assert "extend_chain, cleanup" in outcome.message
    assert "may remove a mapping" in outcome.message


def test_lost_without_removals_resends_the_unreplied_calls_in_order(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b"), ops.extend_chain(T1, "x")]
    pair = plan(ops, calls, retry_seconds=0.5)
    outcome = pair.run([lost("a\x1fb"), replies(NEW_ID, T3)])

    assert pair.kinds() == ["Send", "Pause", "Send"]
    assert pair.pauses[0].seconds > 0 and pair.pauses[0].refresh
    assert pair.sends[1].loads == []  # the loads' replies arrived: they are known
    assert sent(pair.sends[1], calls, ops.keys) == [1, 2]
    assert outcome.replies == ["a\x1fb", NEW_ID, T3]
    assert outcome.interrupted is None


def test_lost_without_removals_and_no_budget_is_unknown(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b"), ops.extend_chain(T1, "x")]
    pair = plan(ops, calls, retry_seconds=0)
    outcome = pair.run([lost("a\x1fb")])

    assert pair.kinds() == ["Send"]
    assert outcome.interrupted is OutcomeUnknownError
    assert outcome.replies == ["a\x1fb", UNKNOWN, UNKNOWN]
    assert "re-sending for 0s did not get through" in outcome.message


def test_lost_again_and_again_until_the_budget_is_spent(ops: Operations, clock: FakeClock) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b")]
    pair = plan(ops, calls, shas(*calls), retry_seconds=0.5, clock=clock)
    outcome = pair.run(itertools.repeat(Lost([], RedisConnectionError())))

    assert len(pair.sends) > 2 and len(pair.pauses) == len(pair.sends) - 1
    assert sum(p.seconds for p in pair.pauses) == pytest.approx(0.5)  # the budget, no more
    assert outcome.interrupted is OutcomeUnknownError
    assert outcome.replies == [UNKNOWN, UNKNOWN]


@pytest.mark.parametrize("known", [False, True], ids=["loads-pending", "no-loads"])
def test_lost_before_any_reply_with_a_removal_is_unknown_everywhere(ops: Operations, known: bool) -> None:
    # With loads: lost before EXEC answered, so not one script is known loaded.
    calls: list[Call[Any]] = [ops.lookup(T1), ops.cleanup(T2)]
    loaded = shas(*calls) if known else set()
    pair = plan(ops, calls, loaded)
    outcome = pair.run([Lost([], RedisConnectionError())])

    assert pair.kinds() == ["Send"]
    assert (pair.sends[0].loads == []) == known
    assert outcome.interrupted is OutcomeUnknownError
    assert outcome.replies == [UNKNOWN, UNKNOWN]
    if not known:
        assert loaded == set()


# ---------------------------------------------------------------- 7. NotSent


def test_not_sent_is_resent_after_a_pause(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.cleanup(T1)]  # even a removal: nothing was written
    pair = plan(ops, calls, retry_seconds=0.5)
    outcome = pair.run([NotSent(RedisConnectionError()), replies(1)])

    assert pair.kinds() == ["Send", "Pause", "Send"]
    assert pair.pauses[0].seconds > 0 and pair.pauses[0].refresh
    assert pair.sends[0] == pair.sends[1]
    assert outcome.replies == [1]


def test_not_sent_past_the_budget_raises_its_error(ops: Operations, clock: FakeClock) -> None:
    error = RedisConnectionError("connect refused")
    pair = plan(ops, [ops.lookup(T1)], retry_seconds=0.5, clock=clock)
    with pytest.raises(RedisConnectionError) as raised:
        pair.run(itertools.repeat(NotSent(error)))

    assert raised.value is error
    assert len(pair.pauses) >= 2
    assert sum(p.seconds for p in pair.pauses) == pytest.approx(0.5)  # the budget, no more


def test_not_sent_without_budget_raises_at_once(ops: Operations) -> None:
    error = RedisConnectionError("connect refused")
    pair = plan(ops, [ops.lookup(T1)], retry_seconds=0)
    with pytest.raises(RedisConnectionError) as raised:
        pair.run([NotSent(error)])

    assert raised.value is error
    assert pair.kinds() == ["Send"]


# ---------------------------------------------------------------- 8. WAIT


def test_wait_ends_a_round_that_writes(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b")]
    pair = plan(ops, calls, shas(*calls), durability=Durability(1, 100))
    outcome = pair.run([replies("a\x1fb", NEW_ID, 7, 1)])

    (send,) = pair.sends
    assert words(send) == ["EVALSHA", "EVALSHA", "HINCRBY", "WAIT"]
    # a write of our own before WAIT, so WAIT covers what the calls read too
    assert send.commands[-2:] == [("HINCRBY", ops.keys[0], "ack", 1), ("WAIT", 1, 100)]
    assert outcome.replies == ["a\x1fb", NEW_ID]
    assert outcome.acknowledged == 1


def test_wait_answered_with_an_error_acknowledges_nothing(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.get_or_create("a.b")]
    pair = plan(ops, calls, shas(*calls), durability=Durability(1, 100))
    unblocked = ResponseError("UNBLOCKED force unblock from blocking operation, instance state changed")
    outcome = pair.run([replies(NEW_ID, 7, unblocked)])

    assert outcome.replies == [NEW_ID]
    assert outcome.acknowledged == 0


def test_no_wait_in_a_round_of_reads(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.lookup(T2)]
    pair = plan(ops, calls, shas(*calls), durability=Durability(1, 100))
    outcome = pair.run([replies("a", "b")])

    assert words(pair.sends[0]) == ["EVALSHA", "EVALSHA"]
    assert outcome.acknowledged is None


def test_a_resent_suffix_of_reads_has_no_wait(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.get_or_create("a.b"), ops.lookup(T1)]
    pair = plan(ops, calls, shas(*calls), durability=Durability(1, 100))
    outcome = pair.run([replies(NEW_ID, NoScriptError("No matching script"), 7, 1), replies("a")])

    assert words(pair.sends[0]) == ["EVALSHA", "EVALSHA", "HINCRBY", "WAIT"]
    assert words(pair.sends[1]) == ["EVALSHA"]
    assert outcome.replies == [NEW_ID, "a"]
    assert outcome.acknowledged == 1


def test_a_round_where_no_write_ran_acknowledges_nothing_and_needs_nothing(ops: Operations) -> None:
    """After a failover every write of the first round answers MOVED (nothing ran there);
    that round's WAIT, answered by a replica with an error, must not count as 0."""
    calls: list[Call[Any]] = [ops.get_or_create("a.b")]
    pair = plan(ops, calls, shas(*calls), durability=Durability(1, 100))
    replica = ResponseError("WAIT cannot be used with replica instances")
    outcome = pair.run([replies(MovedError(ADDRESS), 7, replica), replies(NEW_ID, 8, 1)])

    assert outcome.replies == [NEW_ID]
    assert outcome.acknowledged == 1


def test_readonly_means_the_script_did_not_run(ops: Operations) -> None:
    """A demoted primary refuses the script (READONLY): re-sent, not reported as a result."""
    calls: list[Call[Any]] = [ops.initialize_root("acme")]
    pair = plan(ops, calls, shas(*calls), durability=Durability(1, 100))
    demoted = ReadOnlyError("You can't write against a read only replica.")
    unblocked = ResponseError("UNBLOCKED force unblock from blocking operation, instance state changed")
    outcome = pair.run([replies(demoted, demoted, unblocked), replies(NEW_ID, 3, 1)])

    assert pair.kinds() == ["Send", "Pause", "Send"]
    assert pair.pauses[0].refresh
    assert outcome.replies == [NEW_ID]
    assert outcome.acknowledged == 1


def test_a_lost_wait_reply_is_asked_again_with_a_new_write(ops: Operations) -> None:
    """Every call replied, then the connection dropped before WAIT answered: the calls
    are done (not re-sent); a new acknowledgement write and WAIT cover them."""
    calls: list[Call[Any]] = [ops.cleanup(T1), ops.get_or_create("a.b")]
    pair = plan(ops, calls, shas(*calls), durability=Durability(1, 100))
    outcome = pair.run([lost(1, NEW_ID, 7), replies(8, 1)])

    assert outcome.interrupted is None
    assert outcome.replies == [1, NEW_ID]
    assert words(pair.sends[1]) == ["HINCRBY", "WAIT"]
    assert outcome.acknowledged == 1


def test_a_lost_wait_reply_asked_again_and_lost_again_counts_as_nothing(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.get_or_create("a.b")]
    pair = plan(ops, calls, shas(*calls), durability=Durability(1, 100))
    outcome = pair.run([lost(NEW_ID), lost()])
    assert outcome.replies == [NEW_ID]
    assert outcome.acknowledged == 0


def test_an_acknowledgement_write_redirected_is_asked_again_at_the_owner(ops: Operations) -> None:
    """The slot moved between the call and the acknowledgement write: not 0 replicas,
    but unknown; a new write and WAIT at the namespace's owner settle it."""
    calls: list[Call[Any]] = [ops.get_or_create("a.b")]
    pair = plan(ops, calls, shas(*calls), durability=Durability(1, 100))
    outcome = pair.run([replies(NEW_ID, AskError(ADDRESS), 1), replies(8, 1)])

    assert outcome.replies == [NEW_ID]
    assert words(pair.sends[1]) == ["HINCRBY", "WAIT"]
    assert pair.sends[1].node is None and not pair.sends[1].asking
    assert outcome.acknowledged == 1


def test_the_driver_sends_asking_before_every_keyed_command() -> None:
    step = Send([], [("EVALSHA", "x", 1, "k"), ("HINCRBY", "k", "ack", 1), ("WAIT", 1, 100)], ("h", 1), True)
    packed = transport._packed(step)
    assert [c[0] for c in packed] == ["ASKING", "EVALSHA", "ASKING", "HINCRBY", "WAIT"]
    assert transport._unpacked(step, ["OK", "r", "OK", 3, 1]) == ["r", 3, 1]


# ---------------------------------------------------------------- 9. a failed SCRIPT LOAD


def test_failed_load_while_every_call_answered_noscript_is_raised(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b")]
    noperm = ResponseError("NOPERM this user has no permissions to run the 'script|load' command")
    noscript = NoScriptError("No matching script")
    pair = plan(ops, calls)
    with pytest.raises(ResponseError) as raised:
        pair.run([failed_loads(noperm, noscript, noscript)])

    assert raised.value is noperm
    assert pair.kinds() == ["Send"]


def test_failed_load_is_raised_also_when_the_round_ends_in_wait(ops: Operations) -> None:
    # Nothing of the round ran (every EVALSHA answered NOSCRIPT); the WAIT after the calls
    # is no call of the round, so the table's rule still applies: raise the load's error.
    calls: list[Call[Any]] = [ops.get_or_create("a.b")]
    noperm = ResponseError("NOPERM this user has no permissions to run the 'script|load' command")
    pair = plan(ops, calls, durability=Durability(1, 100))
    with pytest.raises(ResponseError) as raised:
        pair.run([failed_loads(noperm, NoScriptError("No matching script"), 1)])

    assert raised.value is noperm
    assert pair.kinds() == ["Send"]


def test_failed_load_then_lost_connection_with_a_removal_is_unknown(ops: Operations) -> None:
    # The loads failed (EXECABORT) and the connection dropped before any EVALSHA replied.
    # The EVALSHAs were sent and may have run (another client may have loaded the scripts),
    # so it cannot be said that nothing ran: the cleanup's outcome is unknown (rule 4).
    calls: list[Call[Any]] = [ops.lookup(T1), ops.cleanup(T2)]
    noperm = ResponseError("NOPERM this user has no permissions to run the 'script|load' command")
    pair = plan(ops, calls)
    outcome = pair.run([lambda send: Lost([noperm] * len(send.loads), RedisConnectionError())])

    assert pair.kinds() == ["Send"]
    assert outcome.interrupted is OutcomeUnknownError
    assert outcome.replies == [UNKNOWN, UNKNOWN]


def test_failed_load_while_some_call_ran_is_not_raised(ops: Operations) -> None:
    calls: list[Call[Any]] = [ops.lookup(T1), ops.get_or_create("a.b")]
    noperm = ResponseError("NOPERM no permissions")
    pair = plan(ops, calls)
    outcome = pair.run([failed_loads(noperm, "a\x1fb", NoScriptError("No matching script")), replies(NEW_ID)])

    assert pair.kinds() == ["Send", "Send"]
    assert pair.sends[1].loads == sources(calls[1])
    assert sent(pair.sends[1], calls, ops.keys) == [1]
    assert outcome.replies == ["a\x1fb", NEW_ID]


# ---------------------------------------------------------------- rule 1 and rule 2 across the rules


def test_lost_after_a_failed_call_does_not_resend_a_write_that_may_have_run(ops: Operations) -> None:
    # Call 0 did not run (NOSCRIPT); the connection dropped before call 1 replied, so call 1
    # ran once or not at all. Had it run, it ran before call 0: re-sending [0, 1] would
    # apply them out of order without telling the caller (rules 1 and 3). The plan must
    # stop, with call 0 NOT_RUN and call 1 UNKNOWN.
    calls: list[Call[Any]] = [ops.extend_chain(T1, "x"), ops.get_or_create("a.b")]
    pair = plan(ops, calls, shas(*calls))
    outcome = pair.run([lost(NoScriptError("No matching script"))])

    assert pair.kinds() == ["Send"]
    assert outcome.interrupted is not None
    assert outcome.replies == [NOT_RUN, UNKNOWN]


@pytest.mark.parametrize("redirect", [MovedError(ADDRESS), AskError(ADDRESS)], ids=["moved", "ask"])
def test_a_redirected_round_loads_every_script_on_the_new_node(ops: Operations, redirect: Exception) -> None:
    # `loaded` lists what the old owner took; the node the suffix goes to after a MOVED or
    # an ASK never took anything from this transport. Rule 2 ("none only when this
    # transport saw the server take each of them") asks for every script to be loaded,
    # else a node holding only some of them (another client's) runs the later calls
    # while the earlier ones fail NOSCRIPT, and the batch ends in BatchOrderError.
    calls: list[Call[Any]] = [ops.get_or_create("a.b"), ops.lookup(T1)]
    pair = plan(ops, calls, shas(*calls))
    pair.run([replies(redirect, redirect), replies(NEW_ID, "a\x1fb")])

    resend = pair.sends[1]
    assert sent(resend, calls, ops.keys) == [0, 1]
    assert resend.loads == sources(*calls)


# ---------------------------------------------------------------- 10. run_entries


class BatchPair:
    """Drives run_entries with scripted replies per round; records the calls of each round."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.driver = run_entries(entries)
        self.rounds: list[list[Call[Any]]] = []

    def run(self, answers: Sequence[Callable[[list[Call[Any]]], list[Any]] | list[Any]]) -> list[Any]:
        pending = list(answers)
        try:
            calls = next(self.driver)
            while True:
                self.rounds.append(calls)
                assert pending, f"unexpected round {len(self.rounds)}: {[c.script for c in calls]}"
                answer = pending.pop(0)
                calls = self.driver.send(answer if isinstance(answer, list) else answer(calls))
        except StopIteration as done:
            assert not pending, f"{len(pending)} answers left over"
            results: list[Any] = done.value
            return results


def names(calls: Sequence[Call[Any]]) -> list[str]:
    return [call.script.name if call.script else "-" for call in calls]


def test_plain_calls_share_one_round(ops: Operations) -> None:
    entries: list[Entry] = [ops.lookup(T1), ops.get_or_create("a.b"), ops.lookup_hops(T2)]
    pair = BatchPair(entries)
    results = pair.run([["a\x1fb", NEW_ID, "x\x1fy"]])

    assert len(pair.rounds) == 1
    assert pair.rounds[0] == entries
    assert results == ["a.b", NEW_ID, ("x", "y")]


def test_a_multi_step_entry_ends_the_segment_and_its_pages_go_alone(ops: Operations) -> None:
    first, last = ops.lookup(T1), ops.lookup(T2)
    entries: list[Entry] = [first, ops.gc(10), last]
    pair = BatchPair(entries)
    results = pair.run([["a\x1fb", [3, "123"]], [[2, "0"]], ["c\x1fd"]])

    assert [names(r) for r in pair.rounds] == [["lookup", "gc"], ["gc"], ["lookup"]]
    assert pair.rounds[0][0] is first and pair.rounds[2] == [last]
    # The second page goes on from the cursor, for what is left of the limit.
    assert pair.rounds[1][0].args[1:] == ("123", "7")
    assert results == ["a.b", 5, "c.d"]


def test_a_program_that_needs_no_call_does_not_end_the_segment(ops: Operations) -> None:
    def nothing() -> Program[int]:
        return 7
        yield ops.lookup(T1)  # makes this a generator

    entries: list[Entry] = [ops.lookup(T1), nothing(), ops.lookup(T2)]
    pair = BatchPair(entries)
    results = pair.run([["a", "b"]])

    assert len(pair.rounds) == 1
    assert results == ["a", 7, "b"]


def test_a_failed_entry_keeps_its_exception_and_the_batch_goes_on(ops: Operations) -> None:
    error = InvalidConfigError("BADARG")
    entries: list[Entry] = [ops.gc(10), ops.lookup(T1)]
    pair = BatchPair(entries)
    results = pair.run([[error], ["a"]])

    assert [names(r) for r in pair.rounds] == [["gc"], ["lookup"]]
    assert results[0] is error and results[1] == "a"


@pytest.mark.parametrize("marker", [NOT_RUN, UNKNOWN], ids=["not-run", "unknown"])
def test_not_run_or_unknown_stops_the_batch(ops: Operations, marker: object) -> None:
    error = RootConflictError("other")
    entries: list[Entry] = [ops.get_or_create("a.b"), ops.lookup(T1), ops.gc(10), ops.lookup(T2), ops.gc(5)]
    pair = BatchPair(entries)
    results = pair.run([[error, marker, marker]])

    assert len(pair.rounds) == 1  # nothing after the round is sent
    assert results[0] is error  # exceptions stay in place
    assert results[1] is marker
    assert results[2] is UNKNOWN  # a multi-step entry cut short
    assert results[3] is NOT_RUN and results[4] is NOT_RUN  # entries not begun


def test_a_batch_of_single_calls_keeps_errors_and_markers_in_place(ops: Operations) -> None:
    """The all-single-calls round: each reply decoded where it stands, an exception,
    UNKNOWN or NOT_RUN kept as it is, and nothing sent after the round."""
    error = RootConflictError("other")
    entries: list[Entry] = [
        ops.lookup(T1),
        ops.get_or_create("a.b"),
        ops.lookup_hops(T2),
        ops.prune_for_response(T1),
        ops.lookup(T2),
    ]
    pair = BatchPair(entries)
    results = pair.run([["a\x1fb", error, UNKNOWN, NOT_RUN, None]])

    assert pair.rounds == [entries]
    assert results == ["a.b", error, UNKNOWN, NOT_RUN, None]
    assert results[1] is error and results[2] is UNKNOWN and results[3] is NOT_RUN


def test_an_empty_batch_sends_nothing() -> None:
    assert BatchPair([]).run([]) == []


def test_a_program_that_went_on_in_a_stopped_round_is_unknown_and_closed(ops: Operations) -> None:
    closed: list[bool] = []

    def pages() -> Program[int]:
        try:
            yield ops.lookup(T2)
            yield ops.lookup(T3)
            return 1
        finally:
            closed.append(True)

    entries: list[Entry] = [ops.lookup(T1), pages(), ops.lookup(T3)]
    pair = BatchPair(entries)
    results = pair.run([[NOT_RUN, "ran late"]])

    assert len(pair.rounds) == 1
    assert results == [NOT_RUN, UNKNOWN, NOT_RUN]
    assert closed == [True]


def test_a_later_page_lost_stops_the_batch(ops: Operations) -> None:
    entries: list[Entry] = [ops.lookup(T1), ops.gc(10), ops.lookup(T2)]
    pair = BatchPair(entries)
    results = pair.run([["a", [1, "5"]], [UNKNOWN]])

    assert len(pair.rounds) == 2
    assert results == ["a", UNKNOWN, NOT_RUN]


@pytest.mark.parametrize("limit", [0, -1, True])
def test_gc_checks_its_limit_when_called(ops: Operations, limit: int) -> None:
    with pytest.raises(InvalidConfigError):
        ops.gc(limit)
