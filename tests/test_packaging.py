"""`pip install .` as a user runs it: the wheel carries the package and the shipped models, and works on its own."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What pyproject.toml builds the wheel from; the rest of a checkout (runs, caches) stays out of the copy.
SOURCES = ("pyproject.toml", "README.md", "captioner", "weights")

CAPTION_A_GENERATED_PHOTO = """
import json, sys
import numpy as np
from PIL import Image
import captioner
from captioner.api import Captioner, presets, weights_dir

photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((224, 224))
caption = Captioner.from_preset().caption([photo])[0]
print(json.dumps({"package": captioner.__file__, "weights": str(weights_dir()), "presets": sorted(presets()),
                  "words": caption.words, "maps": len(caption.attention)}))
"""

WRITE_A_GALLERY_PAGE = """
import sys
import numpy as np
from PIL import Image
from captioner import heatmap

entry = {"image": "a <b>.jpg", "caption": "a dog", "words": ["a", "dog"], "photo": Image.new("RGB", (32, 24)),
         "attention": np.ones((2, 3, 3))}
heatmap.write_gallery_page([heatmap.gallery_entry_html(entry)], sys.argv[1])
print(heatmap.__file__)
"""
GALLERY_FILES = [path.relative_to(ROOT).as_posix() for folder in ("templates", "static")
                 for path in sorted((ROOT / "captioner" / folder).iterdir())]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(out), str(source)], check=True, capture_output=True, timeout=600)
    [built] = out.glob("captioner-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh environment that sees the system's packages (TensorFlow and the rest: nothing is downloaded) with
    the wheel installed in it; its own captioner comes before the checkout's editable one."""
    home = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(home)], check=True)
    python = home / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=600)
    return home


def test_the_wheel_holds_every_module_of_the_package(wheel):
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    assert shipped == {path.relative_to(ROOT).as_posix() for path in (ROOT / "captioner").rglob("*.py")}


def test_the_wheel_holds_the_gallery_pages_templates_and_static_files(wheel):
    assert GALLERY_FILES and set(GALLERY_FILES) <= set(zipfile.ZipFile(wheel).namelist())


def installed(venv: Path, script: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """`script` run by the wheel's environment, which must not see the checkout (PYTHONPATH) nor its weights."""
    environment = {key: value for key, value in os.environ.items() if key not in ("CAPTIONER_WEIGHTS", "PYTHONPATH")}
    return subprocess.run([venv / "bin" / "python", "-c", script, *arguments], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=600)


def test_an_installed_wheel_writes_a_gallery_page_from_its_own_files(venv, tmp_path):
    page = tmp_path / "index.html"
    done = installed(venv, WRITE_A_GALLERY_PAGE, str(page), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(venv)
    text = page.read_text(encoding="utf-8")
    assert text.count('<figure class="entry" data-grid="3 3">') == 1 and "a &lt;b&gt;.jpg" in text
    for name in GALLERY_FILES:
        if name.startswith("captioner/static/"):
            assert (ROOT / name).read_text(encoding="utf-8") in text, f"{name} is not in the page"


@pytest.mark.slow
def test_an_installed_wheel_captions_with_its_own_shipped_models(venv, tmp_path, request):
    default = (ROOT / "weights" / "default").read_text().strip()
    if json.loads((ROOT / "weights" / default / "encoder.json").read_text())["backbone"] == "squeezenet":
        request.getfixturevalue("squeezenet_file")  # in the Keras cache conftest seeds, which the subprocess inherits
    done = installed(venv, CAPTION_A_GENERATED_PHOTO, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert Path(found["package"]).is_relative_to(venv) and Path(found["weights"]).is_relative_to(venv)
    shipped = {path.parent.name for path in (ROOT / "weights").glob("*/model.keras")} | {"default"}
    assert set(found["presets"]) == shipped
    assert found["words"] and found["maps"] == len(found["words"])
