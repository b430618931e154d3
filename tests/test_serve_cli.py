"""`adainrt serve` refuses bad arguments in one line before Ray starts; the client writes the format its
output suffix asks for and refuses API keys no HTTP header can carry. No server is started here."""

import io
import socket

import pytest
from click.testing import CliRunner
from PIL import Image

from adainrt.cli import main
from adainrt.client import auth_headers, save_served, stylize_remote
from adainrt.errors import AdainrtError, ImageError
from tests.helpers import synthetic_image

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'adainrt[serve]')")


def serve(*args: str, env: dict | None = None):
    result = CliRunner().invoke(main, ["serve", *args], env=env)
    assert result.exit_code != 0
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output  # the whole reason, one line
    return lines[0]


@pytest.mark.parametrize(("args", "says"), [
    (["--max-body-mb", "nan"], "'nan' is not a finite number above 0"),
    (["--max-body-mb", "inf"], "'inf' is not a finite number above 0"),
    (["--body-timeout", "0"], "--body-timeout"),
    (["--replicas", "0"], "--replicas"),
    (["--port", "70000"], "--port"),
    (["--cpus-per-replica", "nan"], "--cpus-per-replica"),
])
def test_bad_numbers_are_one_line_naming_the_option(args, says):
    assert says in serve(*args)


def test_a_port_in_use_a_dead_ray_address_and_a_file_as_cache_are_one_line(tmp_path, exported_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = serve("--port", str(port), "--model", str(exported_dir))
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]  # nothing listens once closed
    line = serve("--address", f"127.0.0.1:{dead}", "--model", str(exported_dir))
    assert "no Ray answers at" in line and "ray start --head" in line
    afile = tmp_path / "cache-file"
    afile.write_text("x")
    line = serve("--model", str(exported_dir), env={"ADAINRT_CACHE": str(afile)})
    assert "$ADAINRT_CACHE" in line and "is a file, not a folder" in line


@pytest.mark.parametrize("key", ["", "  "])
def test_an_empty_api_key_is_refused(key, exported_dir):
    line = serve("--model", str(exported_dir), "--backend", "ort-cpu", "--api-key", key)
    assert "API key is empty" in line


@pytest.mark.parametrize("key", ["clé-ünïcødé-€", "line\nbreak"])
def test_keys_no_header_can_carry_are_refused_in_words(key):
    with pytest.raises(AdainrtError, match="API key"):
        auth_headers(key)
    with pytest.raises(AdainrtError, match="API key"):
        stylize_remote("http://127.0.0.1:9", b"x", "style", api_key=key)  # before any connection
    assert auth_headers("latin-1-é") == {"Authorization": "Bearer latin-1-é"}


@pytest.mark.parametrize(("suffix", "fmt"), [(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP"), (".bmp", "BMP"),
                                             (".tif", "TIFF")])
def test_served_images_are_written_in_the_suffix_format(tmp_path, suffix, fmt):
    buffer = io.BytesIO()
    synthetic_image(20, 30, seed=1).save(buffer, "PNG")
    out = tmp_path / f"out{suffix}"
    save_served(buffer.getvalue(), out)
    with Image.open(out) as written:
        assert written.format == fmt and written.size == (30, 20)
    with pytest.raises(ImageError, match="unknown image suffix"):
        save_served(buffer.getvalue(), tmp_path / "out.xyz")
