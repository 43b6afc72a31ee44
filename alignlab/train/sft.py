"""Supervised fine-tuning: a causal LM learns to answer as the assistant in conversations.

Data: TRL's formats (`messages`, prompt/completion, `text`) from a local file, or the world's curated
transcripts (`--dataset world`). Loss on assistant/completion tokens only by default. Packing puts several
conversations into one row with position ids restarting per conversation, so no attention crosses them
(see `alignlab/data/collate.py`); the unpacked path pads length-bucketed batches. Full fine-tuning or LoRA
(peft), saving an adapter or, with `--merge_adapter`, a merged model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alignlab.config import option
from alignlab.data import (
    SFT_KINDS,
    collate_packed,
    length_bucketed_batches,
    load_dataset,
    pack_examples,
    pad_batch,
    tokenize_sft,
)
from alignlab.errors import UsageError
from alignlab.models import count_parameters, load_causal_lm, load_tokenizer, save_model
from alignlab.rundir import RunDir
from alignlab.train.lm_loss import completion_nll
from alignlab.train.loop import (
    TrainingConfig,
    TrainLoop,
    batch_indices,
    resolve_device,
    seed_everything,
    set_threads,
    total_steps,
)
from alignlab.train.lora import LoraOptions, apply_lora, finalise_lora
from alignlab.train.replay import chat_token_ids, init_chat_tokens, replay_count, replay_examples
from alignlab.world.world import FAMILIES


@dataclass
class SftConfig(TrainingConfig, LoraOptions):
    output_dir: str = option("runs/sft", "run directory: config, metrics, checkpoints, the assistant model")
    model_name_or_path: str = option("runs/pretrain", "local model directory to fine-tune")
    dataset: str = option("world", "'world' (curated transcripts) or a .jsonl/.json/.parquet file or datasets dir")
    world: str | None = option(None, "world YAML spec for --dataset world; the built-in default when not given")
    world_conversations: int = option(15000, "transcripts drawn from the world")
    correct_fraction: float = option(0.5, "share of grammar-tutor prompts whose sentence is already correct")
    world_mix: str | None = option(None, "replace the world's sft.mix for this run: 'grammar=1' or "
                                   "'quiz=0.25,grammar=0.5,...' (unlisted categories get 0)")
    max_length: int = option(512, "longest tokenized example (and packed row)")
    truncation: str = option("error", "what to do with a longer example", ("error", "left", "right"))
    completion_only_loss: bool = option(True, "loss only on assistant/completion tokens")
    packing: bool = option(True, "pack several conversations per row (no cross-attention between them)")
    replay_fraction: float = option(0.0, "share of training examples that are pretraining documents with loss on "
                                    "every token, to keep the base's world model (see train/replay.py)")
    replay_corpus: str = option("world", "'world' or a local .txt/.jsonl corpus for the replay documents")
    replay_families: list[str] = option(list(FAMILIES), "with --replay_corpus world: the corpus families to "
                                        "replay (e.g. answer_sheets,quiz_dialogues); all by default", FAMILIES)
    init_chat_tokens: bool = option(False, "give the chat template's special tokens, which pretraining never saw, "
                                    "the embedding of the text they stand for (Q:, A:, newline); once per model")
    lora_train_chat_tokens: bool = option(True, "with --use_peft, also train the embeddings of the chat "
                                          "template's special tokens (pretraining never saw them); they are "
                                          "saved in the adapter")
    learning_rate: float = option(2e-3, "peak learning rate")
    num_train_epochs: float = option(2.0, "passes over the data when max_steps is -1")
    per_device_train_batch_size: int = option(16, "rows (packed) or conversations per micro-batch")


def parse_world_mix(text: str) -> dict[str, float]:
    """'grammar=1,quiz=0.5' -> a whole sft.mix: every category, 0 where not listed."""
    from alignlab.world.checks import SFT_CATEGORIES

    mix = dict.fromkeys(SFT_CATEGORIES, 0.0)
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if key not in mix or not sep:
            raise UsageError(f"--world_mix: {item.strip()!r} is not category=weight "
                             f"(categories: {', '.join(SFT_CATEGORIES)})")
        try:
            mix[key] = float(value)
        except ValueError:
            raise UsageError(f"--world_mix: {key}: weight {value!r} is not a number") from None
    return mix


def load_sft_records(cfg: SftConfig) -> tuple[list[dict], str, str]:
    if cfg.dataset == "world":
        from alignlab.world import load_world

        overrides = {"sft": {"mix": parse_world_mix(cfg.world_mix)}} if cfg.world_mix else None
        world = load_world(cfg.world, overrides)
        records = world.sft_conversations(cfg.world_conversations, cfg.seed, cfg.correct_fraction)
        return records, "conversational_language_modeling", "world"
    records, kind = load_dataset(cfg.dataset, allowed=SFT_KINDS, purpose="sft")
    return records, kind, cfg.dataset


def read_replay_corpus(cfg: SftConfig) -> list[str]:
    if cfg.replay_fraction == 0:
        return []
    if set(cfg.replay_families) != set(FAMILIES):
        if cfg.replay_corpus != "world":
            raise UsageError("--replay_families: selects families of the world corpus; it cannot be used "
                             f"with --replay_corpus {cfg.replay_corpus}")
        from alignlab.world import load_world

        by_family = load_world(cfg.world).documents(cfg.seed)
        return [doc for family in cfg.replay_families for doc in by_family[family]]
    from alignlab.train.pretrain import PretrainConfig, read_corpus

    docs, _, _ = read_corpus(PretrainConfig(corpus=cfg.replay_corpus, world=cfg.world, seed=cfg.seed))
    return docs


def make_batches(examples, cfg: SftConfig, pad_id: int):
    """A function step -> micro-batch dict, deterministic in (seed, step), and the micro-batches per epoch."""
    size = cfg.per_device_train_batch_size
    if cfg.packing:
        rows = pack_examples(examples, cfg.max_length)

        def packed(step: int) -> dict:
            return collate_packed([rows[i] for i in batch_indices(len(rows), step, size, cfg.seed)], pad_id)

        return packed, math.ceil(len(rows) / size)
    per_epoch = len(length_bucketed_batches(examples, size, cfg.seed))
    cache: dict[int, list] = {}

    def padded(step: int) -> dict:
        epoch, k = divmod(step, per_epoch)
        if epoch not in cache:
            cache.clear()
            cache[epoch] = length_bucketed_batches(examples, size, cfg.seed * 1000 + epoch)
        return pad_batch([examples[i] for i in cache[epoch][k]], pad_id)

    return padded, per_epoch


def widen_position_limit(model, trained_length: int) -> None:
    """Record that the model was fine-tuned for `trained_length` (--max_length) positions: a base pretrained on
    128-token blocks learns 270-token conversations here (RoPE has no position table to outgrow), and the
    sampler refuses prompts past the config's limit. (An unmerged LoRA adapter keeps its base's config.)"""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "max_position_embeddings", trained_length) < trained_length:
        config.max_position_embeddings = trained_length


def run_sft(cfg: SftConfig) -> dict:
    run = RunDir.claim(cfg.output_dir, cfg.overwrite, cfg.resume)
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg.model_name_or_path)
    records, kind, source = load_sft_records(cfg)
    examples = tokenize_sft(records, tokenizer, cfg.max_length, cfg.completion_only_loss, cfg.truncation,
                            path=source, kind=kind)
    device = resolve_device(cfg.device)
    examples += replay_examples(read_replay_corpus(cfg), replay_count(len(examples), cfg.replay_fraction),
                                tokenizer, cfg.max_length, cfg.seed)
    model = load_causal_lm(cfg.model_name_or_path).to(device)
    # Changed chat-token rows reach an unmerged adapter only as trainable tokens, which it saves.
    keeps_embeddings = not cfg.use_peft or cfg.merge_adapter or cfg.lora_train_chat_tokens
    initialised = init_chat_tokens(model, tokenizer) if cfg.init_chat_tokens and keeps_embeddings else []
    if cfg.use_peft:
        model = apply_lora(model, cfg, chat_token_ids(tokenizer) if cfg.lora_train_chat_tokens else None)
    batch_for, per_epoch = make_batches(examples, cfg, tokenizer.pad_token_id)
    accum = cfg.gradient_accumulation_steps
    total = total_steps(cfg, per_epoch)
    n_tokens = sum(len(e) for e in examples)
    run.write_config(cfg, {"resolved": {"total_steps": total, "examples": len(examples), "format": kind,
                                        "chat_tokens_initialised": initialised,
                                        "tokens": n_tokens, "parameters": count_parameters(model)}})

    loop = TrainLoop(cfg, model, run, total, description="sft")
    model.train()
    for step in loop.remaining_steps():
        step_loss, step_tokens, trained = 0.0, 0, 0
        for micro in range(accum):
            batch = {k: v.to(device) for k, v in batch_for(step * accum + micro).items()}
            extra = {k: batch[k] for k in ("position_ids", "attention_mask") if k in batch}
            with loop.forward_context():
                loss, n = completion_nll(model, batch["input_ids"], batch["labels"], **extra)
            loop.backward(loss)
            step_loss += loss.detach() / accum
            step_tokens += batch["input_ids"].numel()
            trained += n
        loop.optimizer_step({"loss": step_loss, "trained_tokens": trained}, tokens=step_tokens)
    timing = loop.finish()

    saved = finalise_lora(model, cfg) if cfg.use_peft else model
    widen_position_limit(saved, cfg.max_length)
    save_model(saved, tokenizer, run.path)
    summary = {"stage": "sft", "examples": len(examples), "format": kind, "peft": cfg.use_peft,
               "merged": cfg.use_peft and cfg.merge_adapter, **timing}
    run.write_summary(summary)
    return summary

