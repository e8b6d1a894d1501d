import builtins
import os
import struct
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captioner.preprocess import SUPPORTED_SUFFIXES, ImageError, load_image, to_array

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)
SIZE = (40, 30)


def assert_close(pixel, expected, tolerance=12):
    assert np.abs(np.subtract(pixel, expected)).max() <= tolerance, f"{pixel} is not close to {expected}"


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".bmp", ".tif"])
def test_common_formats_load_as_rgb(tmp_path, suffix):
    path = tmp_path / f"photo{suffix}"
    Image.new("RGB", SIZE, RED).save(path)
    image = load_image(path)
    assert (image.mode, image.size) == ("RGB", SIZE)
    assert_close(image.getpixel((20, 15)), RED)
    assert suffix in SUPPORTED_SUFFIXES


def test_animated_gif_gives_its_first_frame(tmp_path):
    path = tmp_path / "animated.gif"
    red, blue = Image.new("RGB", SIZE, RED), Image.new("RGB", SIZE, BLUE)
    red.save(path, save_all=True, append_images=[blue], duration=100, loop=0)
    with Image.open(path) as gif:
        assert gif.n_frames == 2
    image = load_image(str(path))
    assert (image.mode, image.size) == ("RGB", SIZE)
    assert_close(image.getpixel((0, 0)), RED)


@pytest.mark.parametrize(
    ("mode", "colour", "expected"),
    [("L", 200, (200, 200, 200)), ("CMYK", (0, 255, 255, 0), RED)],
)
def test_grayscale_and_cmyk_jpegs_become_rgb(tmp_path, mode, colour, expected):
    path = tmp_path / f"{mode}.jpg"
    Image.new(mode, SIZE, colour).save(path)
    image = load_image(path)
    assert (image.mode, image.size) == ("RGB", SIZE)
    assert_close(image.getpixel((5, 5)), expected)


def test_transparent_rgba_png_is_composited_on_white(tmp_path):
    path = tmp_path / "rgba.png"
    picture = Image.new("RGBA", SIZE, (0, 0, 0, 0))
    picture.paste((255, 0, 0, 255), (0, 0, 20, 30))
    picture.save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == RED
    assert image.getpixel((35, 5)) == WHITE


def test_palette_png_with_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "palette.png"
    picture = Image.new("P", SIZE, 0)
    picture.putpalette([0, 255, 0, *BLUE])
    picture.paste(1, (0, 0, 20, 30))
    picture.save(path, transparency=0)
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == BLUE
    assert image.getpixel((35, 5)) == WHITE


def test_16_bit_png_is_scaled_to_8_bits(tmp_path):
    path = tmp_path / "deep.png"
    levels = np.array([[0, 128 * 257, 65535]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(levels).save(path)
    with Image.open(path) as deep:
        assert deep.mode == "I;16"
    image = load_image(path)
    assert image.mode == "RGB"
    assert [image.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_32_bit_image_is_stretched_to_its_range():
    deep = Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32))
    assert deep.mode == "I"
    image = load_image(deep)
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_exif_orientation_is_honoured(tmp_path):
    path = tmp_path / "rotated.jpg"
    stored = Image.new("RGB", (40, 20), RED)
    stored.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a quarter turn clockwise
    stored.save(path, exif=exif)
    image = load_image(path)
    assert image.size == (20, 40)
    assert_close(image.getpixel((10, 5)), RED)
    assert_close(image.getpixel((10, 35)), BLUE)


def test_an_already_open_image_is_converted():
    image = load_image(Image.new("LA", SIZE, (0, 0)))
    assert (image.mode, image.size) == ("RGB", SIZE)
    assert image.getpixel((0, 0)) == WHITE


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a 1-bit image of this size: enough for Pillow's pixel limit to judge it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG")
    return buffer.getvalue()[: buffer.tell() // 2]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"hello, I am text\n", "not an image"),
        (b"", "empty file"),
        (truncated_jpeg(), "truncated or corrupt image"),
        # Between Pillow's limit and twice it Pillow only warns; above twice it raises. Both must fail.
        (png_header_only(10_000, 10_000), "decompression bomb: 100000000 pixels"),
        (png_header_only(20_000, 20_000), "decompression bomb: 400000000 pixels"),
    ],
    ids=["text", "empty", "truncated", "bomb-warning", "bomb-error"],
)
def test_bad_files_raise_image_error_with_a_plain_reason(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError) as raised:
        load_image(path)
    assert str(raised.value) == reason


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="^no such file$"):
        load_image(tmp_path / "nowhere.jpg")


def test_directory_is_not_readable_as_an_image(tmp_path):
    folder = tmp_path / "photo.jpg"
    folder.mkdir()
    with pytest.raises(ImageError, match="^cannot read: is a directory$"):
        load_image(folder)


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.jpg"
    Image.new("RGB", SIZE).save(path)
    path.chmod(0)
    if os.access(path, os.R_OK):
        # Root reads through file modes, so play the kernel's part and refuse this one file.
        real_open = builtins.open

        def refusing_open(file, *args, **kwargs):
            if Path(file) == path:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(ImageError, match="^cannot read: permission denied$"):
        load_image(path)


def test_to_array_resizes_to_float_rgb():
    picture = Image.new("RGB", (300, 200), BLUE)
    picture.paste(RED, (0, 0, 150, 200))
    array = to_array(picture, size=(64, 32))
    assert array.shape == (32, 64, 3)
    assert array.dtype == np.float32
    assert 0 <= array.min() and array.max() <= 255
    np.testing.assert_allclose(array[16, 5], RED, atol=1)
    np.testing.assert_allclose(array[16, 60], BLUE, atol=1)


def test_to_array_defaults_to_224_square():
    assert to_array(Image.new("L", (50, 80))).shape == (224, 224, 3)


def test_to_array_rejects_an_empty_size():
    with pytest.raises(ValueError, match="positive"):
        to_array(Image.new("RGB", SIZE), size=(0, 10))
