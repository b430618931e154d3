"""The HTTP app behind `adainrt serve`, without Ray: one batch of calls, each answered on its own."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from adainrt.server import Call, ServeSettings, StylizeApp
from tests.conftest import synthetic_image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def app(exported_dir, tmp_path_factory):
    app = StylizeApp(ServeSettings(str(exported_dir), "ort-cpu", bank_dir=str(tmp_path_factory.mktemp("bank"))))
    yield app
    app.stylizer.close()


def stylize_call(style: str, alpha: float, body: bytes) -> Call:
    return Call("POST", "/v1/stylize", {"style": style, "alpha": str(alpha), "size": "0"}, {}, body)


def test_a_batch_mixing_styles_alphas_and_bad_calls_answers_each_alone(app):
    for name, seed in (("one", 1), ("two", 2)):
        style = png(synthetic_image(64, 64, seed))
        assert app.handle_many([Call("POST", f"/v1/styles/{name}", {"size": "0"}, {}, style)])[0].status == 201
    contents = [synthetic_image(56, 48, seed=10 + k) for k in range(4)]
    calls = [stylize_call("one", 1.0, png(contents[0])), stylize_call("two", 0.4, png(contents[1])),
             stylize_call("one", 0.7, b"not an image"), stylize_call("missing", 1.0, png(contents[2])),
             stylize_call("two", 1.0, png(contents[3])), Call("GET", "/healthz", {}, {}, b"")]
    replies = app.handle_many(calls)
    assert [r.status for r in replies] == [200, 200, 400, 404, 200, 200]
    assert [r.batch for r in replies] == [3, 3, None, None, 3, None]
    # a request that fails only inside the run (colour preservation needs a style image, not stored
    # statistics) fails alone; the others of its batch are answered
    recolour = Call("POST", "/v1/stylize", {"style": "one", "preserve_color": "color", "size": "0"}, {},
                    png(contents[0]))
    mixed = app.handle_many([calls[0], recolour, calls[1]])
    assert [r.status for r in mixed] == [200, 400, 200]
    assert "colour preservation" in json.loads(mixed[1].body)["error"]
    assert json.loads(replies[2].body)["error"].startswith("content")
    assert "missing" in json.loads(replies[3].body)["error"]
    for index, content, name, alpha in ((0, contents[0], "one", 1.0), (1, contents[1], "two", 0.4),
                                        (4, contents[3], "two", 1.0)):
        reply = replies[index]
        alone = app.handle_many([stylize_call(name, alpha, png(content))])[0]
        assert alone.batch == 1
        got, expected = (np.asarray(Image.open(io.BytesIO(r.body)), np.int16) for r in (reply, alone))
        assert got.shape == (56, 48, 3) and np.abs(got - expected).max() <= 2
