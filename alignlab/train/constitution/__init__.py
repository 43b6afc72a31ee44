"""Constitutional AI (Bai et al. 2022) and AI feedback (Lee et al. 2023), one module per command.

    principles  the constitution: loading (YAML, Markdown, a world's section) and seeded principle draws
    chat        the prompt set (world probes or a TRL prompt file) and chat sampling, shared by revise/label
    revise      `alignlab constitution revise`: response -> critique -> revision, N rounds, gold per round
    distill     `alignlab constitution distill`: SFT on (prompt, final revision) through `train/sft.py`
    label       `alignlab constitution label`: a judge model's two-order (A)/(B) preferences, TRL pairs
"""
