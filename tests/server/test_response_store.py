"""The Responses store, model-free: bounded by count and by bytes with the least recently used evicted,
per API key (one key cannot read, continue or delete another's response), thread-safe; and how a
request continues from a stored response (`previous_response_id`) or stores nothing (`store: false`)."""

from __future__ import annotations

import threading

import pytest

from ondevice import Settings
from ondevice.cli.serve import byte_size
from ondevice.server.protocol import APIError
from ondevice.server.response_store import ResponseStore, stored_response
from ondevice.server.responses import parse_responses_request

pytestmark = pytest.mark.nomodel

TOOLS = [{"type": "function", "name": "get_weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def response(response_id: str, text: str = "Sunny.") -> dict:
    return {"id": response_id, "object": "response", "store": True,
            "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}]}


def entry(response_id: str, text: str = "Sunny.", question: str = "Weather?"):
    return stored_response(response(response_id, text), [{"type": "message", "role": "user", "content": question}])


def test_get_delete_and_the_conversation_kept():
    store = ResponseStore()
    assert store.put("k", "resp_1", entry("resp_1"))
    got = store.get("k", "resp_1")
    assert got is not None and got.response_object() == response("resp_1")
    assert [item.get("role") for item in got.items()] == ["user", "assistant"]  # the input, then the output
    assert store.delete("k", "resp_1") and store.get("k", "resp_1") is None
    assert not store.delete("k", "resp_1")
    assert store.stats()["responses"] == 0 and store.stats()["bytes"] == 0


def test_one_key_cannot_read_continue_or_delete_anothers():
    store = ResponseStore()
    store.put("key-a", "resp_1", entry("resp_1"))
    assert store.get("key-b", "resp_1") is None
    assert not store.delete("key-b", "resp_1")
    assert store.get("key-a", "resp_1") is not None  # still there for its owner
    # The same id under two keys is two responses: neither sees or replaces the other.
    store.put("key-b", "resp_1", entry("resp_1", "Rainy."))
    assert store.get("key-a", "resp_1").response_object()["output"][0]["content"][0]["text"] == "Sunny."
    assert store.get("key-b", "resp_1").response_object()["output"][0]["content"][0]["text"] == "Rainy."


def test_count_bound_evicts_the_least_recently_used():
    store = ResponseStore(max_responses=3)
    for i in range(3):
        store.put("k", f"resp_{i}", entry(f"resp_{i}"))
    assert store.get("k", "resp_0") is not None  # used: now the most recent
    store.put("k", "resp_3", entry("resp_3"))
    assert store.get("k", "resp_1") is None  # the least recently used went
    assert all(store.get("k", f"resp_{i}") is not None for i in (0, 2, 3))
    assert store.stats()["responses"] == 3


def test_byte_bound_evicts_until_it_holds_and_refuses_an_entry_alone_over_it():
    one = entry("resp_0").size
    store = ResponseStore(max_responses=100, max_bytes=3 * one)
    for i in range(5):
        assert store.put("k", f"resp_{i}", entry(f"resp_{i}"))
        assert store.stats()["bytes"] <= 3 * one
    assert [store.get("k", f"resp_{i}") is not None for i in range(5)] == [False, False, True, True, True]
    big = entry("resp_big", "x" * (3 * one))
    assert not store.put("k", "resp_big", big)  # over the bound by itself: kept nowhere, nothing evicted
    assert store.stats()["responses"] == 3
    # A bigger entry evicts as many as it needs.
    assert store.put("k", "resp_5", entry("resp_5", "y" * one))
    assert store.stats()["bytes"] <= 3 * one and store.get("k", "resp_5") is not None


def test_a_store_of_size_zero_keeps_nothing():
    assert not ResponseStore(max_responses=0).put("k", "resp_1", entry("resp_1"))
    with pytest.raises(ValueError, match="bounds"):
        ResponseStore(max_responses=-1)


def test_threads_putting_and_reading_at_once_keep_the_bounds():
    store = ResponseStore(max_responses=50, max_bytes=40 * entry("resp_00000").size)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(300):
                rid = f"resp_{t}{i:04d}"
                store.put(f"key{t % 2}", rid, entry(rid))
                store.get(f"key{t % 2}", f"resp_{t}{max(i - 3, 0):04d}")
                if i % 7 == 0:
                    store.delete(f"key{t % 2}", rid)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stats = store.stats()
    assert stats["responses"] <= 50 and stats["bytes"] <= stats["max_bytes"]
    # The byte count is exact: the sum of what is held.
    assert stats["bytes"] == sum(e.size for e in store._entries.values())


def parse(body: dict, store: ResponseStore, key: str = "k"):
    def history(response_id: str):
        found = store.get(key, response_id)
        return found.items() if found is not None else None
    # The native format: the messages reach the chat template as they are (no card system prompt).
    return parse_responses_request({"model": "m", **body}, "m", Settings(), "native", history=history)


def test_previous_response_id_prepends_the_conversation_so_far():
    store = ResponseStore()
    first = parse({"input": "Weather in Oslo?", "tools": TOOLS, "instructions": "Be brief."}, store)
    assert first.store and first.previous_response_id is None
    call = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
            "arguments": '{"city":"Oslo"}', "status": "completed"}
    store.put("k", first.id, stored_response({"id": first.id, "output": [call]}, first.input_items))

    second = parse({"previous_response_id": first.id, "tools": TOOLS,
                    "input": [{"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]}, store)
    messages = second.chat.messages
    # The instructions do not carry over (as in OpenAI's API): the user turn, the call, its result.
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[0]["content"] == "Weather in Oslo?"
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather" and messages[2]["content"] == "sunny"
    assert second.previous_response_id == first.id
    assert [i.get("type") for i in second.input_items] == ["message", "function_call", "function_call_output"]


def test_unknown_or_foreign_previous_response_id_is_a_400_naming_it():
    store = ResponseStore()
    first = parse({"input": "hi"}, store, key="key-a")
    store.put("key-a", first.id, stored_response({"id": first.id, "output": []}, first.input_items))
    for rid, key in (("resp_missing", "key-a"), (first.id, "key-b")):
        with pytest.raises(APIError) as err:
            parse({"input": "and?", "previous_response_id": rid}, store, key=key)
        assert err.value.status == 400 and err.value.param == "previous_response_id"
        assert err.value.code == "previous_response_not_found" and repr(rid) in err.value.message
    with pytest.raises(APIError) as err:
        parse({"input": "and?", "previous_response_id": 7}, store)
    assert err.value.param == "previous_response_id" and err.value.code == "invalid_type"


def test_store_false_and_a_bad_store_field():
    store = ResponseStore()
    assert not parse({"input": "hi", "store": False}, store).store
    assert parse({"input": "hi", "store": True}, store).store
    # Without a store to look in (the stateless parse), nothing is stored and no id is found.
    assert not parse_responses_request({"model": "m", "input": "hi"}, "m", Settings()).store
    with pytest.raises(APIError) as err:
        parse({"input": "hi", "store": "yes"}, store)
    assert err.value.param == "store" and err.value.status == 400


def test_conversation_is_still_refused():
    with pytest.raises(APIError) as err:
        parse({"input": "hi", "conversation": "conv_1"}, ResponseStore())
    assert err.value.param == "conversation" and "previous_response_id" in err.value.message


@pytest.mark.parametrize("text,value", [("1048576", 2 ** 20), ("64M", 64 * 2 ** 20), ("512k", 512 * 2 ** 10),
                                        ("1G", 2 ** 30), ("0", 0)])
def test_byte_size_option(text, value):
    assert byte_size(text) == value


@pytest.mark.parametrize("text", ["", "M", "-5", "1.5M", "ten"])
def test_byte_size_option_refuses(text):
    import argparse
    with pytest.raises(argparse.ArgumentTypeError, match="byte count"):
        byte_size(text)


@pytest.mark.parametrize("argv, message", [
    (["--responses-store", "-1"], "--responses-store: expected an integer >= 0, got -1"),
    (["--responses-store-bytes", "ten"], "expected a byte count such as 1048576 or 64M, got 'ten'"),
])
def test_serve_refuses_bad_store_bounds_before_a_model_loads(capsys, argv, message):
    from ondevice.cli import main

    try:
        status = main(["serve", "--port", "0", *argv])
    except SystemExit as exc:  # argparse's own refusal
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and message in err, err
