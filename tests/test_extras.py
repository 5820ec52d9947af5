"""A lean core install: loading, sampling, saving and the CLI work without the extras; a missing extra is a
one-line "pip install 'fsgen_hub[...]'" error; pyproject's extras and the Space's files say the same."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

import fsgen_hub
from fsgen_hub.utils.extras import OPTIONAL

ROOT = Path(__file__).resolve().parents[1]

# Run with every optional package made unimportable (sys.modules[name] = None makes `import name` fail),
# which is what a `pip install fsgen_hub` without extras looks like to the code.
CORE_ONLY = textwrap.dedent("""
    import sys
    for name in {blocked!r}:
        sys.modules[name] = None
    import json, torch
    from pathlib import Path
    from fsgen_hub import AutoGenerator
    from fsgen_hub.cli import main
    from fsgen_hub.models.dcgan import DCGANConfig, DCGANGenerator

    out = Path(sys.argv[1])
    torch.manual_seed(0)
    DCGANGenerator(DCGANConfig(resolution=16, nz=8, ngf=4, ndf=4)).save_pretrained(out / "m")  # with its card
    G = AutoGenerator.from_pretrained(out / "m")
    images = G.sample(seeds=[0, 1])
    codes = {{
        "sample": main(["sample", str(out / "m"), "--seeds", "0-1", "--outdir", str(out / "png")]),
        "adapt": main(["adapt", "--source", str(out / "m"), "--data", str(out / "png"), "--shots", "2",
                       "--output-dir", str(out / "run")]),
        "demo": main(["demo", str(out / "m")]),
        "evaluate": main(["evaluate", str(out / "m"), "--reference", str(out / "png"),
                          "--metrics", "msssim_diversity", "--num-samples", "4"]),
    }}
    loaded = sorted(name for name in {blocked!r} if sys.modules.get(name) is not None)
    print(json.dumps({{"images": len(images), "card": (out / "m" / "README.md").is_file(), "codes": codes,
                      "loaded": loaded}}))
""")


def test_the_core_works_without_any_extra(tmp_path):
    blocked = sorted(OPTIONAL) + ["scipy", "wandb"]
    script = CORE_ONLY.format(blocked=blocked)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                            timeout=300, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                              "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["images"] == 2 and report["card"] and report["loaded"] == []
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["seed0000.png", "seed0001.png"]
    assert report["codes"] == {"sample": 0, "adapt": 2, "demo": 2, "evaluate": 2}
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3 and "Traceback" not in result.stderr
    assert "training (fsgen adapt / fsgen train) needs accelerate: pip install 'fsgen_hub[train]'" in errors[0]
    assert "the demo (fsgen demo) needs gradio: pip install 'fsgen_hub[demo]'" in errors[1]
    assert "needs torchmetrics: pip install 'fsgen_hub[metrics]'" in errors[2]
    assert not (tmp_path / "run").exists()


def _extras() -> tuple[list[Requirement], dict[str, list[Requirement]]]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {name: [Requirement(r) for r in reqs] for name, reqs in project["optional-dependencies"].items()}
    return [Requirement(r) for r in project["dependencies"]], extras


def _expand(extra: str, extras: dict[str, list[Requirement]]) -> set[str]:
    names = set()
    for req in extras[extra]:
        if req.name.replace("-", "_") == "fsgen_hub":
            for sub in req.extras:
                names |= _expand(sub, extras)
        else:
            names.add(req.name)
    return names


def test_extras_install_what_the_code_asks_for():
    core, extras = _extras()
    assert {r.name for r in core} == {"torch", "huggingface-hub", "safetensors", "numpy", "pillow", "jinja2"}
    for module, (pip_name, extra) in OPTIONAL.items():
        assert pip_name in _expand(extra, extras), (module, extra)
    # the README's two commands install .[dev]: it must hold everything
    assert {"train", "metrics", "demo"} <= {e for r in extras["all"] for e in r.extras}
    assert _expand("train", extras) | _expand("metrics", extras) | _expand("demo", extras) <= _expand("dev", extras)
    assert "\".[dev]\"" in (ROOT / "Makefile").read_text()


def test_space_front_matter_and_requirements():
    text = (ROOT / "spaces_app" / "README.md").read_text()
    meta = yaml.safe_load(re.match(r"---\n(.*?)\n---\n", text, re.S).group(1))
    assert meta["sdk"] == "gradio" and (ROOT / "spaces_app" / meta["app_file"]).is_file()
    _, extras = _extras()
    gradio_spec = next(r for r in extras["demo"] if r.name == "gradio").specifier
    assert Version(meta["sdk_version"]) in gradio_spec  # the SDK's gradio satisfies what fsgen_hub asks for
    assert meta["models"] and all(re.fullmatch(r"[\w.-]+/[\w.-]+", m) for m in meta["models"])
    lines = [line.split("#")[0].strip() for line in (ROOT / "spaces_app" / "requirements.txt").read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line]
    assert not any(r.name == "gradio" for r in requirements)  # gradio comes from sdk_version, not from pip
    ours = next(r for r in requirements if r.name.replace("-", "_") == "fsgen_hub")
    assert ours.url and ours.url.endswith(f"@v{fsgen_hub.__version__}")  # pinned to this release's tag
