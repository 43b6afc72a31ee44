"""`alignlab eval --model DIR`: run several instruments on one model, each merging its key into eval.json.

Each instrument keeps its own command (`alignlab eval calibration ...`) with every knob; this umbrella runs
them with their defaults plus the few options below. Instruments that need another model are skipped with
a logged note when it is not given: kl and optimum need `--ref_model`, reward (the proxy reward of the
model's answers, `eval proxy_reward`) needs `--reward_model`. gold (`eval gold`) always runs, and with
`--ref_model` also measures the win rate against the reference.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from alignlab.config import CommonConfig, option
from alignlab.evals.sampling import PROMPT_FORMATS
from alignlab.world.checks import PROBE_CATEGORIES

log = logging.getLogger(__name__)

INSTRUMENTS = ("calibration", "behaviour", "kl", "optimum", "gold", "reward", "diversity", "persona")
# Fields the umbrella passes to every instrument config that has them; the sizes only when they are set.
SHARED = ("seed", "num_threads", "quiet", "world", "output_dir", "prompt_format", "reward_model", "beta")
SIZES = ("prompts_per_category", "max_new_tokens", "samples_per_fact")


@dataclass
class EvalConfig(CommonConfig):
    model: str = option("runs/sft", "model directory to measure")
    instruments: list[str] = option(list(INSTRUMENTS), "instruments to run, in this order", INSTRUMENTS)
    ref_model: str | None = option(None, "reference model of kl and optimum (skipped without one) and the "
                                         "baseline of gold's win rate")
    reward_model: str | None = option(None, "proxy reward model for reward (it is skipped without one)")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    output_dir: str | None = option(None, "where eval.json goes; the model directory by default")
    prompt_format: str = option("chat", "behaviour, reward, diversity, persona: chat template or bare text "
                                        "(gold always uses the chat template)",
                                PROMPT_FORMATS)
    beta: float = option(0.1, "optimum: KL strength of the objective the model is compared with")
    prompts_per_category: int | None = option(None, "sampled instruments: distinct world prompts per category "
                                                     "(none = each instrument's default)")
    max_new_tokens: int | None = option(None, "sampled instruments: longest answer (none = each one's default)")
    samples_per_fact: int | None = option(None, "calibration: temperature-1 samples per fact (0 = exact only; "
                                                "none = its default)")


@dataclass(frozen=True)
class Instrument:
    target: str  # "module:function"
    config: str  # "module:ConfigClass"
    needs: str | None = None  # an EvalConfig field that must be set, or the instrument is skipped
    extra: Callable[[EvalConfig], dict] = lambda cfg: {}


REGISTRY: dict[str, Instrument] = {
    "calibration": Instrument("alignlab.evals.calibration:run_calibration",
                              "alignlab.evals.calibration:CalibrationConfig"),
    "behaviour": Instrument("alignlab.evals.behaviour:run_behaviour", "alignlab.evals.behaviour:BehaviourConfig"),
    "kl": Instrument("alignlab.evals.kl:run_kl", "alignlab.evals.kl:KlConfig", "ref_model",
                     lambda cfg: {"ref_model": cfg.ref_model}
                     | ({"n_prompts": cfg.prompts_per_category} if cfg.prompts_per_category else {})),
    "optimum": Instrument("alignlab.evals.optimum:run_optimum", "alignlab.evals.optimum:OptimumConfig", "ref_model",
                          lambda cfg: {"ref_model": cfg.ref_model}),
    # gold has no prompts_per_category: its n_prompts is spread over the categories.
    "gold": Instrument("alignlab.evals.gold:run_gold", "alignlab.evals.gold:GoldConfig", None,
                       lambda cfg: {"baseline": cfg.ref_model}
                       | ({"n_prompts": cfg.prompts_per_category * len(PROBE_CATEGORIES)}
                          if cfg.prompts_per_category else {})),
    "reward": Instrument("alignlab.evals.proxy_reward:run_proxy_reward",
                         "alignlab.evals.proxy_reward:ProxyRewardConfig", "reward_model"),
    "diversity": Instrument("alignlab.evals.diversity:run_diversity", "alignlab.evals.diversity:DiversityConfig"),
    "persona": Instrument("alignlab.evals.persona:run_persona", "alignlab.evals.persona:PersonaConfig"),
}


def _load(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def instrument_config(name: str, cfg: EvalConfig):
    """The config of instrument `name` for `cfg`: model, the shared fields it has, and its extras."""
    cls = _load(REGISTRY[name].config)
    names = {f.name for f in dataclasses.fields(cls)}
    values = {key: getattr(cfg, key) for key in SHARED if key in names}
    values |= {key: getattr(cfg, key) for key in SIZES if key in names and getattr(cfg, key) is not None}
    return cls(model=cfg.model, **values, **REGISTRY[name].extra(cfg))


def run_eval(cfg: EvalConfig) -> dict:
    """Run the instruments in order; returns {"ran": {name: seconds}, "skipped": {name: why}}."""
    ran, skipped = {}, {}
    for name in dict.fromkeys(cfg.instruments):
        needs = REGISTRY[name].needs
        if needs and not getattr(cfg, needs):
            skipped[name] = f"needs --{needs}"
            log.warning("eval: %s skipped (it needs --%s)", name, needs)
            continue
        tick = time.perf_counter()
        _load(REGISTRY[name].target)(instrument_config(name, cfg))
        ran[name] = round(time.perf_counter() - tick, 1)
    if not cfg.quiet:
        print(f"eval of {cfg.model}: ran {ran}" + (f", skipped {skipped}" if skipped else ""))
    return {"ran": ran, "skipped": skipped}
