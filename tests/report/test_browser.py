"""The report in a real browser: headless Debian chromium renders it, takes a screenshot, and the dumped DOM
shows every figure loaded (the page's script marks each <img>) and one summary row per stage.

Chromium is installed with apt-get when it is missing (CI runs as root on Debian); if that is not
possible the test fails with the command to run — it never skips, so a CI without a browser is noticed.
"""

import os
import shutil
import subprocess

import pytest

from alignlab.cli import main

from .page import parse_page

BROWSERS = ("chromium", "chromium-browser")


def _apt_install() -> str:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1200)
    if proc.returncode != 0:  # a fresh container has no package lists yet
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env, timeout=600)
        proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1200)
    return proc.stderr[-600:]


@pytest.fixture(scope="session")
def chromium() -> str:
    found = next((p for b in BROWSERS if (p := shutil.which(b))), None)
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.fail("the browser test needs Debian's chromium: run `apt-get install -y chromium` as root")
    log = _apt_install()
    found = next((p for b in BROWSERS if (p := shutil.which(b))), None)
    if not found:
        pytest.fail(f"`apt-get install -y chromium` did not install a chromium binary; apt said: {log}")
    return found


def render(chromium: str, page, out_dir) -> tuple[str, bytes]:
    """The DOM after the page's load handlers ran, and a screenshot (PNG bytes) of the top of the page."""
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={out_dir / 'profile'}", "--window-size=1280,2400"]
    url = page.resolve().as_uri()
    shot = out_dir / "screenshot.png"
    subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, timeout=180, check=True)
    # The virtual time budget lets the load event (and the page's image check) fire before the dump.
    dom = subprocess.run([*flags, "--virtual-time-budget=10000", "--dump-dom", url], capture_output=True,
                         text=True, timeout=180, check=True).stdout
    return dom, shot.read_bytes()


def check_in_browser(chromium: str, html_path, out_dir, stages: list[str]) -> None:
    source = parse_page(html_path.read_text())
    dom_text, png = render(chromium, html_path, out_dir)
    dom = parse_page(dom_text)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a rendered page, not a blank one
    assert dom.body.get("data-broken-images") == "0", "the page's image check did not run or found broken images"
    assert len(dom.images) == len(source.images) > 0
    assert dom.loaded == ["yes"] * len(dom.images)
    assert dom.summary_rows == stages


def test_report_renders_in_chromium(chromium, fake_runs, tmp_path):
    html_path = tmp_path / "report.html"
    assert main(["report", *map(str, fake_runs), "--output", str(html_path), "--quiet"]) == 0
    check_in_browser(chromium, html_path, tmp_path, ["pretrain", "sft", "ppo"])


def test_a_broken_image_is_caught(chromium, fake_runs, tmp_path):
    """The check itself: a page with one corrupt figure reports it."""
    html_path = tmp_path / "report.html"
    assert main(["report", str(fake_runs[0]), "--output", str(html_path), "--quiet"]) == 0
    text = html_path.read_text()
    html_path.write_text(text.replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAA", 1))
    dom = parse_page(render(chromium, html_path, tmp_path)[0])
    assert dom.body.get("data-broken-images") == "1" and dom.loaded.count("no") == 1


@pytest.mark.slow
def test_report_of_evaluated_models_renders_in_chromium(chromium, tiny_tokenizer, tmp_path, one_thread):
    """Real instruments on two tiny models (a base and a second seed as its 'fine-tune'), then the report."""
    import yaml

    from alignlab.models import build_model, save_model
    from alignlab.world import load_world

    spec = load_world().to_dict()  # four facts (the waterfall's rainbow is rewarded): quick fact probes
    spec["facts"] = [f for f in spec["facts"] if f["entity"] in ("waterfall", "castle", "garden", "village")]
    world = tmp_path / "small.yaml"
    world.write_text(yaml.safe_dump(spec))
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    for seed, path in ((0, base), (1, tuned)):
        save_model(build_model("nano", len(tiny_tokenizer), 512, seed=seed, tokenizer=tiny_tokenizer), tiny_tokenizer,
                   path)
    small = ["--world", str(world), "--prompts_per_category", "2", "--max_new_tokens", "6", "--samples_per_fact", "2",
             "--quiet", "--num_threads", "1"]
    assert main(["eval", "--model", str(base), *small]) == 0
    assert main(["eval", "--model", str(tuned), "--ref_model", str(base), *small]) == 0
    html_path = tmp_path / "report.html"
    assert main(["report", str(base), str(tuned), "--output", str(html_path), "--quiet"]) == 0
    check_in_browser(chromium, html_path, tmp_path, ["base", "tuned"])
    assert "not run: no run has eval.json[&#x27;optimum&#x27;]" not in html_path.read_text()
