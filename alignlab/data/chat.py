"""Find which tokens of a chat-template rendering belong to which message, for any template.

HF's `return_assistant_tokens_mask` needs `{% generation %}` tags, which most local models' templates lack.
Instead we render growing prefixes of the conversation and diff the token ids: the tokens of assistant
turn j are those between `render(messages[:j], add_generation_prompt=True)` and `render(messages[:j+1])`.
That is only sound if every rendering is a token-level prefix of the next ("the prefix property"); we
check it and raise a clear error for templates that break it (e.g. ones that rewrite earlier turns, such
as dropping the reasoning of past assistant messages).
"""

from __future__ import annotations

from alignlab.errors import UsageError


def render_ids(tokenizer, messages: list[dict], add_generation_prompt: bool, where: str) -> list[int]:
    """Token ids of `messages` under the tokenizer's chat template (the template adds any bos itself)."""
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError(f"{where}: the tokenizer has no chat template, which conversational data needs")
    import jinja2

    try:
        ids = tokenizer.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=False
        )
    except jinja2.exceptions.TemplateError as e:
        raise UsageError(f"{where}: the chat template refused the conversation: {e}") from None
    return list(ids)


def assistant_token_mask(tokenizer, messages: list[dict], where: str) -> tuple[list[int], list[bool]]:
    """(input_ids, mask) of a whole conversation; mask is True on every assistant turn's tokens.

    An assistant message with `"weight": 0` (the OpenAI fine-tuning convention) is context only: its
    tokens stay False, e.g. the flawed first answer of a critique-and-revise demonstration.

    The tokens of an assistant turn are its content and whatever the template closes the turn with (for
    alignlab's template, `content<|end|>`); the role header added by the generation prompt is not.
    """
    full = render_ids(tokenizer, messages, add_generation_prompt=False, where=where)
    mask = [False] * len(full)
    for j, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        start = render_ids(tokenizer, messages[:j], add_generation_prompt=True, where=where)
        end = render_ids(tokenizer, messages[: j + 1], add_generation_prompt=False, where=where)
        _require_prefix(start, end, f"{_count(j)} plus the generation prompt", _count(j + 1), where)
        _require_prefix(end, full, _count(j + 1), f"all {len(messages)}", where)
        mask[len(start) : len(end)] = [True] * (len(end) - len(start))
    return full, mask


def prompt_completion_ids(tokenizer, prompt: list[dict], completion: list[dict], where: str):
    """(prompt_ids, completion_ids): the prompt rendered with the generation prompt, then what follows it.

    Concatenated they are exactly the rendering of `prompt + completion`, so a completion scored or trained
    here is the one the model would generate after `prompt_ids`, turn terminator included.
    """
    prompt_ids = render_ids(tokenizer, prompt, add_generation_prompt=True, where=where)
    full = render_ids(tokenizer, prompt + completion, add_generation_prompt=False, where=where)
    _require_prefix(
        prompt_ids, full, "the prompt plus the generation prompt", "the prompt and completion", where
    )
    return prompt_ids, full[len(prompt_ids) :]


def _count(n: int) -> str:
    return f"the first {n} message" + ("" if n == 1 else "s")


def _require_prefix(
    shorter: list[int], longer: list[int], short_name: str, long_name: str, where: str
) -> None:
    if longer[: len(shorter)] != shorter:
        raise UsageError(
            f"{where}: the chat template is not incremental: the tokens of {short_name} are not a prefix of"
            f" the tokens of {long_name}, so the assistant's tokens cannot be located; use a template"
            " that renders earlier turns the same way whatever follows them"
        )
