import base64
import importlib.util
import os
import re
import tempfile
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
from PIL import Image

from captioner.heatmap import gallery_entry_html, overlay, overlays, strip, write_gallery_page
from captioner.png import png_bytes, save_png

GRAY = (128, 128, 128)
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
NASTY_CAPTION = '<script>alert(1)</script> & "x"'


def peaked_map(row: int, column: int, shape=(7, 7)) -> np.ndarray:
    attention = np.zeros(shape, dtype=np.float32)
    attention[row, column] = 1
    return attention


def hottest(colormap: str = "inferno") -> np.ndarray:
    return np.array(matplotlib.colormaps[colormap](1.0)[:3]) * 255


@pytest.mark.parametrize("alpha", [0.6, 1.0])
def test_overlay_is_hottest_where_attention_peaks(alpha):
    photo = Image.new("RGB", (224, 224), GRAY)
    result = np.asarray(overlay(photo, peaked_map(2, 5), alpha=alpha), dtype=float)
    expected = np.array(GRAY) * (1 - alpha) + hottest() * alpha

    cell = 224 // 7
    centre = (2 * cell + cell // 2, 5 * cell + cell // 2)  # (y, x) of cell (2, 5)
    np.testing.assert_allclose(result[centre], expected, atol=3)
    distance = np.abs(result - expected).sum(axis=2)
    y, x = np.unravel_index(distance.argmin(), distance.shape)
    assert (y // cell, x // cell) == (2, 5)
    assert distance[220, 5] > 150, "a far corner should be nowhere near the hottest colour"
    # Smooth, not nearest-neighbour blocks: the colour fades within the peak's own cell.
    assert distance[centre[0], centre[1] - cell // 2 + 1] > 20


def test_overlay_keeps_the_photo_size_and_honours_the_colormap():
    photo = Image.new("RGB", (90, 60), GRAY)
    result = overlay(photo, peaked_map(0, 0, shape=(3, 3)), alpha=1.0, colormap="viridis")
    assert result.size == (90, 60)
    np.testing.assert_allclose(result.getpixel((0, 0)), hottest("viridis"), atol=3)


@pytest.mark.parametrize(("shape", "size"), [((13, 13), (224, 224)), ((7, 5), (120, 80)), ((13, 9), (6, 11)), ((1, 1), (4, 4))])
def test_overlay_resamples_the_map_as_pillow_bicubic_does(shape, size):
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), np.uint8))
    word_map = np.random.default_rng(0).random(shape).astype(np.float32)
    smooth = np.asarray(Image.fromarray(word_map).resize(size, Image.Resampling.BICUBIC))
    low, high = smooth.min(), smooth.max()
    levels = np.round((smooth - low) * (255 / (high - low) if high > low else 0)).astype(np.uint8)
    palette = np.round(matplotlib.colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255)
    expected = np.asarray(photo, dtype=float) * 0.4 + palette[levels] * 0.6

    difference = np.abs(np.asarray(overlay(photo, word_map, alpha=0.6), dtype=float) - expected)
    assert difference.max() <= 2, "a level may round the other way; more means the resampling differs"
    assert difference.mean() < 0.6


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"attention": np.zeros(49)}, "non-empty \\(h, w\\) map"),
        ({"attention": np.full((7, 7), np.nan)}, "NaN"),
        ({"colormap": "no-such-map"}, "unknown colormap 'no-such-map'"),
        ({"alpha": 1.5}, "alpha must be between 0 and 1"),
    ],
)
def test_overlay_rejects_bad_input_plainly(arguments, message):
    call = {"image": Image.new("RGB", (10, 10)), "attention": np.ones((7, 7))} | arguments
    with pytest.raises(ValueError, match=message):
        overlay(**call)


def photo_with_quadrants(size=(120, 80)) -> Image.Image:
    photo = Image.new("RGB", size, (30, 120, 200))
    photo.paste((220, 180, 40), (0, 0, size[0] // 2, size[1] // 2))
    return photo


def test_strip_has_the_photo_then_one_labelled_panel_per_word():
    photo, words, panel = photo_with_quadrants(), ["a", "dog", "runs"], 64
    attention = np.stack([peaked_map(i, i) for i in range(len(words))])
    sheet = strip(photo, words, attention, panel_size=panel)

    assert sheet.width == (len(words) + 1) * panel
    assert panel < sheet.height < 2 * panel
    square = photo.resize((panel, panel), Image.Resampling.BICUBIC)
    expected_panels = [square, *(overlay(square, word_map) for word_map in attention)]
    for index, expected in enumerate(expected_panels):
        assert sheet.crop((index * panel, 0, (index + 1) * panel, panel)).tobytes() == expected.tobytes()
    labels = np.asarray(sheet.crop((0, panel, sheet.width, sheet.height)).convert("L"))
    assert labels[:, :panel].min() == 255, "the photo has no word under it"
    for index in range(1, len(words) + 1):
        assert labels[:, index * panel : (index + 1) * panel].min() < 100, f"word {index} is not written"


def test_overlays_colour_each_map_on_its_own():
    photo, maps = photo_with_quadrants(), np.stack([peaked_map(1, 1), peaked_map(5, 5), np.ones((7, 7))])
    together = overlays(photo, maps)
    assert [image.tobytes() for image in together] == [overlay(photo, word_map).tobytes() for word_map in maps]
    assert together[0].tobytes() != together[1].tobytes()
    assert overlays(photo, np.zeros((0, 7, 7))) == []


@pytest.mark.parametrize(("words", "columns", "rows"), [(5, 6, 1), (8, 5, 2), (11, 6, 2), (12, 5, 3), (1, 2, 1)])
def test_strip_wraps_many_words_onto_as_few_evenly_filled_rows_as_fit(words, columns, rows):
    photo, panel = photo_with_quadrants(), 32
    one_row = strip(photo, ["w"], np.ones((1, 7, 7)), panel_size=panel)
    sheet = strip(photo, ["w"] * words, np.ones((words, 7, 7)), panel_size=panel)
    assert (sheet.width, sheet.height) == (columns * panel, rows * one_row.height)


def test_strip_needs_one_map_per_word():
    with pytest.raises(ValueError, match="one map per word"):
        strip(photo_with_quadrants(), ["a", "b"], np.ones((3, 7, 7)))


def gallery_entries() -> list:
    words = ["a", "dog", "runs"]
    attention = np.stack([peaked_map(0, 0), peaked_map(3, 3), peaked_map(6, 6)])
    return [
        {
            "image": "dog.jpg",
            "caption": "a dog runs",
            "words": words,
            "photo": photo_with_quadrants(),
            "attention": attention,
        },
        SimpleNamespace(
            image='"><img src=x onerror=alert(2)>.jpg',
            caption=NASTY_CAPTION,
            words=["<b>", "&"],
            photo=photo_with_quadrants((80, 120)),
            attention=attention[:2],
        ),
    ]


def write_gallery(entries, path):
    write_gallery_page(map(gallery_entry_html, entries), path)


def test_gallery_escapes_user_text_and_needs_nothing_from_outside(tmp_path):
    page = tmp_path / "gallery.html"
    write_gallery(gallery_entries(), page)
    text = page.read_text(encoding="utf-8")

    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;" in text
    assert "<script>alert" not in text
    assert "<img src=x" not in text
    assert "&lt;b&gt;</button>" in text
    assert text.count('<figure class="entry" data-grid="7 7">') == 2
    assert text.count('class="word"') == text.count("data-map=") == 5
    links = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert len(links) == 1 + 2  # favicon, two photos
    assert all(link.startswith("data:") for link in links)
    assert list(tmp_path.iterdir()) == [page], "no temporary file is left behind"


def test_gallery_page_streams_fragments_and_replaces_atomically(tmp_path):
    page = tmp_path / "gallery.html"
    write_gallery_page((gallery_entry_html(entry) for entry in gallery_entries()), page, title="Mine & yours")
    written = page.read_text(encoding="utf-8")
    assert "<title>Mine &amp; yours</title>" in written

    def failing_fragments():
        yield gallery_entry_html(gallery_entries()[0])
        raise RuntimeError("captioning crashed")

    with pytest.raises(RuntimeError, match="captioning crashed"):
        write_gallery_page(failing_fragments(), page)
    assert page.read_text(encoding="utf-8") == written
    assert list(tmp_path.iterdir()) == [page]


def test_a_gallery_page_without_entries_says_so(tmp_path):
    page = tmp_path / "gallery.html"
    write_gallery([], page)
    assert re.search(r'<main data-palette="[A-Za-z0-9+/=]{1024}" data-alpha="0.6"></main>', page.read_text())
    # The style sheet's `main:empty::after` writes "No images." only into a main with nothing in it, not even a space.


def test_gallery_entry_names_a_missing_field():
    entry = dict(gallery_entries()[0])
    del entry["attention"]
    with pytest.raises(ValueError, match="gallery entry has no 'attention'"):
        gallery_entry_html(entry)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 9, 3), (9, 1, 3), (37, 23, 3)])
def test_png_bytes_decode_to_the_same_pixels(shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    with Image.open(BytesIO(png_bytes(pixels))) as decoded:
        assert decoded.format == "PNG" and decoded.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(decoded), pixels)


def test_save_png_writes_a_complete_file(tmp_path):
    path = tmp_path / "figures" / "strip.png"
    image = photo_with_quadrants()
    save_png(image, path)
    with Image.open(path) as saved:
        assert saved.format == "PNG"
        assert saved.convert("RGB").tobytes() == image.tobytes()
    assert list(path.parent.iterdir()) == [path]


@pytest.fixture(scope="module")
def browser():
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    if missing:
        reason = f"the headless-browser test needs {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run"
        " --disable-background-networking --disable-component-update --disable-sync"
    ).split():
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with tempfile.TemporaryDirectory(prefix="captioner-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def gallery_url(tmp_path_factory):
    page = tmp_path_factory.mktemp("gallery") / "gallery.html"
    write_gallery(gallery_entries(), page)
    return page.as_uri()


def open_gallery(browser, url):
    browser.get(url)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert errors == [], f"the page logged problems: {errors}"
    return browser.find_elements("css selector", ".entry")


def decoded(data_uri: str) -> np.ndarray:
    with Image.open(BytesIO(base64.b64decode(data_uri.split(",", 1)[1]))) as image:
        return np.asarray(image.convert("RGB"), dtype=float)


def test_hovering_a_word_shows_its_heatmap_and_leaving_restores_the_photo(browser, gallery_url):
    from selenium.webdriver import ActionChains

    entries = open_gallery(browser, gallery_url)
    assert len(entries) == 2
    photo = entries[0].find_element("css selector", ".photo")
    words = entries[0].find_elements("css selector", ".word")
    original = photo.get_attribute("src")
    assert original.startswith("data:image/jpeg;base64,")

    shown = []
    for word, attention in zip(words, gallery_entries()[0]["attention"]):
        ActionChains(browser).move_to_element(word).perform()
        heat = photo.get_attribute("src")
        assert heat.startswith("data:image/png;base64,"), f"hovering {word.text!r} did not show its heatmap"
        # The page colours the map as `overlay` does, over the photo it shows.
        expected = np.asarray(overlay(Image.fromarray(decoded(original).astype(np.uint8)), attention), dtype=float)
        difference = np.abs(decoded(heat) - expected)
        assert difference.mean() < 0.5 and difference.max() <= 2, f"{word.text!r}: {difference.mean(), difference.max()}"
        shown.append(heat)
    assert len(set(shown)) == len(words)

    ActionChains(browser).move_to_element(browser.find_element("css selector", "h1")).perform()
    assert photo.get_attribute("src") == original
    ActionChains(browser).move_to_element(words[1]).perform()
    assert photo.get_attribute("src") == shown[1], "a word shows the same heatmap every time"
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []


def test_clicking_a_word_keeps_its_heatmap_until_clicked_again(browser, gallery_url):
    from selenium.webdriver import ActionChains

    entry = open_gallery(browser, gallery_url)[1]
    photo = entry.find_element("css selector", ".photo")
    word = entry.find_elements("css selector", ".word")[1]
    heading = browser.find_element("css selector", "h1")
    original = photo.get_attribute("src")

    ActionChains(browser).click(word).perform()
    heat = photo.get_attribute("src")
    assert heat != original
    ActionChains(browser).move_to_element(heading).perform()
    assert photo.get_attribute("src") == heat
    ActionChains(browser).click(word).move_to_element(heading).perform()
    assert photo.get_attribute("src") == original


@pytest.mark.parametrize(("shape", "size"), [((13, 13), (224, 224)), ((7, 5), (120, 80)), ((13, 9), (6, 11))])
def test_the_page_resamples_maps_as_pillow_bicubic_does(browser, gallery_url, shape, size):
    open_gallery(browser, gallery_url)
    levels = np.random.default_rng(0).integers(0, 256, shape)
    page = browser.execute_script(
        "const [levels, ...sizes] = arguments; return Array.from(upsample(Uint8Array.from(levels), ...sizes))",
        levels.ravel().tolist(), *shape, *size,
    )
    pillow = np.asarray(Image.fromarray(levels.astype(np.float32)).resize(size, Image.Resampling.BICUBIC))
    np.testing.assert_allclose(np.reshape(page, pillow.shape), pillow, atol=1e-3)
