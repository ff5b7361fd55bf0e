"""The page in a real browser: headless Chromium, driven by Selenium, against a server on 127.0.0.1.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them);
skipped with that reason without them, and a failure under CI=true.
"""

import base64
import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="ganforge serve needs fastapi: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="ganforge serve needs uvicorn: pip install -e '.[serve]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium: pip install -e '.[dev]'")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from conftest import unavailable  # noqa: E402
from ganforge.serve import create_app  # noqa: E402

pytestmark = pytest.mark.slow  # a real browser: seconds per test

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    unavailable(
        "Chromium or chromedriver is not installed (Debian: apt-get install chromium chromium-driver; .ci/run does)"
    )


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium through Debian's chromedriver; Selenium Manager never downloads anything."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=900,900")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = 30):
    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def grid_loaded(driver, src_other_than: str | None = None) -> str:
    """Wait until the grid image has loaded (from a URL other than ``src_other_than``); returns its URL."""

    def loaded(d):
        src = d.execute_script(
            "const g = document.getElementById('grid'); return g.complete && g.naturalWidth > 0 ? g.src : null;"
        )
        return src if src and src != src_other_than else None

    return wait_for(driver, loaded)


def grid_png(driver) -> Image.Image:
    """The PNG the grid shows, fetched again by the page's own JavaScript."""
    encoded = driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(document.getElementById('grid').src).then(r => r.arrayBuffer()).then(buffer => {
          let text = ''; for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
          done(btoa(text));
        });"""
    )
    return Image.open(io.BytesIO(base64.b64decode(encoded)))


def test_new_samples_the_walk_slider_and_errors_in_chromium(browser, server_thread, tiny_run, tmp_path):
    with server_thread(create_app(tiny_run("dcgan"))) as server:
        browser.get(server.url)
        first = grid_loaded(browser)
        assert "/api/samples?" in first and "seed=0" in first and "n=16" in first
        wait_for(browser, lambda d: "dcgan" in d.find_element(By.ID, "model").text)
        assert not browser.find_element(By.ID, "class-picker").is_displayed()  # unconditional: no classes
        before = grid_png(browser)
        assert before.size == (122, 122)

        browser.find_element(By.ID, "new-samples").click()
        second = grid_loaded(browser, src_other_than=first)
        assert "/api/samples?" in second
        after = grid_png(browser)
        assert after.size == before.size and after.tobytes() != before.tobytes()
        assert browser.find_element(By.ID, "download").get_attribute("href") == second + "&download=1"

        # A click in the middle of the slider walks half-way to the other seed.
        browser.find_element(By.ID, "walk").click()
        walk = grid_loaded(browser, src_other_than=second)
        assert "/api/walk?" in walk and "t=0.5" in walk
        assert grid_png(browser).tobytes() not in (before.tobytes(), after.tobytes())
        browser.save_screenshot(str(tmp_path / "serve-page.png"))
        viewport = browser.execute_script("return [innerWidth, innerHeight].map(side => side * devicePixelRatio)")

        # A bad seed typed into the box gets the server's message on the page.
        seed = browser.find_element(By.ID, "seed")
        seed.send_keys(Keys.CONTROL, "a")
        seed.send_keys("-5", Keys.ENTER)
        error = wait_for(browser, lambda d: d.find_element(By.ID, "error").text)
        assert error == "seed: Input should be greater than or equal to 0 (got '-5')"
    screenshot = Image.open(tmp_path / "serve-page.png").convert("RGB")
    assert list(screenshot.size) == viewport  # the whole page as shown, for the docs
    assert screenshot.getcolors(maxcolors=16) is None  # over 16 colours: the page and its grid, not a blank


def test_the_pretrained_mnist_generator_is_served_by_name(browser, server_thread):
    # `ganforge serve mnist` on a fresh install: the generator shipped in the package, no data, no network.
    with server_thread(create_app("mnist")) as server:
        browser.get(server.url)
        first = grid_loaded(browser)
        wait_for(browser, lambda d: "dcgan" in d.find_element(By.ID, "model").text)
        choices = Select(browser.find_element(By.ID, "label"))
        assert len(choices.options) == 11  # all classes, then the ten digits
        choices.select_by_value("7")
        assert "label=7" in grid_loaded(browser, src_other_than=first)
        assert grid_png(browser).convert("L").getextrema()[1] > 200  # digits: bright strokes on black


def test_the_class_picker_asks_for_the_class_chosen(browser, server_thread, conditional_app, tmp_path):
    with server_thread(conditional_app) as server:
        browser.get(server.url)
        first = grid_loaded(browser)
        picker = browser.find_element(By.ID, "class-picker")
        wait_for(browser, lambda d: picker.is_displayed())
        choices = Select(browser.find_element(By.ID, "label"))
        assert [option.text for option in choices.options] == ["all classes", "0", "1", "2"]

        choices.select_by_value("2")
        chosen = grid_loaded(browser, src_other_than=first)
        assert "label=2" in chosen
        grid = grid_png(browser).convert("L")
        assert grid.getpixel((6, 6)) == 180 and grid.getpixel((16, 6)) == 180  # every image is class 2's gray
        browser.save_screenshot(str(tmp_path / "serve-page-conditional.png"))


def test_the_translation_page_shows_an_uploaded_images_translation(browser, server_thread, tmp_path):
    from ganforge import train
    from ganforge.tasks.translation.handle import load_translator, read_input, translate_images
    from test_translation import side_by_side_folder, translation_config

    data = side_by_side_folder(tmp_path / "data", train=4, test=1)
    train(translation_config(data, tmp_path / "run", steps=1, batch_size=2))
    picture = data / "test" / "0.png"
    with server_thread(create_app(tmp_path / "run")) as server:
        browser.get(server.url)
        wait_for(browser, lambda d: "pix2pix run" in d.find_element(By.ID, "model").text)
        assert not browser.find_element(By.ID, "direction-picker").is_displayed()  # pix2pix: one way only
        browser.find_element(By.ID, "file").send_keys(str(picture))
        wait_for(
            browser,
            lambda d: d.execute_script(
                "const o = document.getElementById('output'); return o.complete && o.naturalWidth > 0"
            ),
        )
        # The page's CSP lets no script fetch a blob: URL; a canvas reads the shown image's pixels instead.
        encoded = browser.execute_script(
            """const image = document.getElementById('output');
            const canvas = document.createElement('canvas');
            canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
            canvas.getContext('2d').drawImage(image, 0, 0);
            return canvas.toDataURL('image/png').split(',')[1];"""
        )
        shown = Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB")
        generator = load_translator(tmp_path / "run", "cpu").generator()
        # A pair side by side, as the run trained on: its left half (A) is translated, and the page says so.
        expected = translate_images(generator, read_input(picture, 3, 32, half="left"))[0].permute(1, 2, 0).numpy()
        assert shown.size == (32, 32) and shown.tobytes() == Image.fromarray(expected).tobytes()
        assert "its left half was translated" in browser.find_element(By.ID, "note").text
        assert browser.find_element(By.ID, "download").is_displayed()
        browser.save_screenshot(str(tmp_path / "translate-page.png"))

        # A file that is not an image: the server's one line on the page.
        (tmp_path / "notes.png").write_text("not an image")
        browser.find_element(By.ID, "file").send_keys(str(tmp_path / "notes.png"))
        error = wait_for(browser, lambda d: d.find_element(By.ID, "error").text)
        assert error.startswith("image: cannot read the upload as an image")
