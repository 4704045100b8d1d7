"""How much does turning a frame into a typed event cost, next to ``json.loads``?

Run from the repository root::

    python benchmarks/parse_events.py [--rounds 7]

For a few kinds of event it prints the time per event of ``json.loads(frame)``,
of ``structure_event(dict)`` (the typed layer alone: dispatch on ``type`` plus
the cattrs-generated structure function with strict type checks) and of
``parse_event(frame)`` (both), and the ratio structure / json.loads. The goal is
a ratio of at most 2.0 for text deltas, the events that arrive by the hundred.
Each figure is the best of several rounds, so it is the cost without noise from
other processes. Takes a few seconds.
"""

import argparse
import json
import os
import platform
import sys
import timeit
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from openai_ws._convert import parse_event, structure_event

DELTA_GOAL = 2.0


def _frame(obj: Dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _response(output: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {
        "id": "resp_0123456789abcdef0123456789abcdef",
        "object": "response",
        "created_at": 1741476542,
        "completed_at": 1741476543,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": "You are a helpful assistant.",
        "max_output_tokens": 256,
        "max_tool_calls": None,
        "model": "gpt-5.5",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "conversation": None,
        "reasoning": {"effort": "low", "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Current weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": True,
            }
        ],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 136,
            "input_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 0},
            "output_tokens": 87,
            "output_tokens_details": {"reasoning_tokens": 12},
            "total_tokens": 223,
        },
        "user": None,
        "safety_identifier": None,
        "prompt_cache_key": None,
        "metadata": {},
    }


_MESSAGE = {
    "type": "message",
    "id": "msg_0123456789abcdef",
    "role": "assistant",
    "status": "completed",
    "content": [
        {
            "type": "output_text",
            "text": "The capital of France is Paris. " * 8,
            "annotations": [],
            "logprobs": [],
        }
    ],
}
_REASONING = {
    "type": "reasoning",
    "id": "rs_0123456789abcdef",
    "summary": [{"type": "summary_text", "text": "The user asks for a capital city."}],
    "encrypted_content": "gAAAA" + "x" * 200,
    "status": "completed",
}
_CALL = {
    "type": "function_call",
    "id": "fc_0123456789abcdef",
    "call_id": "call_0123456789abcdef",
    "name": "get_weather",
    "arguments": '{"city":"Paris"}',
    "status": "completed",
}

CASES: List[Tuple[str, str]] = [
    (
        "output_text.delta",
        _frame(
            {
                "type": "response.output_text.delta",
                "item_id": "msg_0123456789abcdef",
                "output_index": 0,
                "content_index": 0,
                "delta": "Hello ",
                "logprobs": [],
                "sequence_number": 42,
                "stream_id": "lane-3",
            }
        ),
    ),
    (
        "function_call_arguments.delta",
        _frame(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": "fc_0123456789abcdef",
                "output_index": 1,
                "delta": '{"city":',
                "obfuscation": "a1b2c3",
                "sequence_number": 17,
            }
        ),
    ),
    (
        "output_item.done (message)",
        _frame(
            {
                "type": "response.output_item.done",
                "output_index": 0,
                "item": _MESSAGE,
                "sequence_number": 60,
                "stream_id": "lane-3",
            }
        ),
    ),
    (
        "completed (3 items + usage)",
        _frame(
            {
                "type": "response.completed",
                "response": _response([_REASONING, _MESSAGE, _CALL]),
                "sequence_number": 63,
                "stream_id": "lane-3",
            }
        ),
    ),
    (
        "error",
        _frame(
            {
                "type": "error",
                "status": 429,
                "error": {
                    "type": "tokens",
                    "code": "rate_limit_exceeded",
                    "message": "Rate limit reached. Please try again in 1.2s.",
                    "param": None,
                    "headers": {"x-ratelimit-remaining-tokens": "0"},
                },
                "stream_id": "lane-3",
            }
        ),
    ),
]


def best_per_call(fn: Callable[[], Any], rounds: int = 7, round_seconds: float = 0.025) -> float:
    """Seconds per call of ``fn``: the best of ``rounds`` rounds of about ``round_seconds``."""
    timer = timeit.Timer(fn)
    probe = 200
    elapsed = timer.timeit(number=probe)
    number = max(1, int(probe * round_seconds / max(elapsed, 1e-9)))
    return min(timer.repeat(repeat=rounds, number=number)) / number


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=7, help="timing rounds per figure, best kept (default: 7)"
    )
    args = parser.parse_args(argv)
    print(f"Python {platform.python_version()} on {platform.machine()} ({platform.system()})")
    header = f"{'event':<30} {'bytes':>6} {'json.loads':>11} {'structure':>11} "
    header += f"{'parse_event':>12} {'structure/json':>15}"
    print(header)
    print("-" * len(header))
    delta_ratio = 0.0
    for name, frame in CASES:
        decoded = json.loads(frame)
        structure_event(decoded)  # warm up, and prove the frame is valid
        t_json = best_per_call(lambda frame=frame: json.loads(frame), args.rounds)
        t_structure = best_per_call(lambda decoded=decoded: structure_event(decoded), args.rounds)
        t_parse = best_per_call(lambda frame=frame: parse_event(frame), args.rounds)
        ratio = t_structure / t_json
        if name == "output_text.delta":
            delta_ratio = ratio
        print(
            f"{name:<30} {len(frame):>6} {t_json * 1e6:>9.2f}us {t_structure * 1e6:>9.2f}us "
            f"{t_parse * 1e6:>10.2f}us {ratio:>15.2f}"
        )
    verdict = "OK" if delta_ratio <= DELTA_GOAL else "OVER GOAL"
    print(f"\noutput_text.delta: structure/json.loads = {delta_ratio:.2f}", end=" ")
    print(f"(goal <= {DELTA_GOAL}) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
