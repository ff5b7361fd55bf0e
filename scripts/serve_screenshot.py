"""Screenshot of the ganforge serve page for the README, taken in headless Chromium.

    python scripts/serve_screenshot.py runs/dcgan-4min docs/images/serve-page.png --seed 3

Starts ``ganforge serve SOURCE --port 0`` on 127.0.0.1, opens the page in
Debian's chromium through its chromedriver (Selenium Manager downloads
nothing), types the seed, waits for the grid and saves the window.
"""

import argparse
import subprocess
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a run directory or checkpoint")
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("--seed", type=int, default=0, help="the seed typed into the page (default: 0)")
    parser.add_argument("--size", default="820,740", help="window width,height in pixels (default: 820,740)")
    args = parser.parse_args()

    command = [sys.executable, "-m", "ganforge", "serve", args.source, "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    with tempfile.TemporaryDirectory() as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"):
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={args.size}")
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
        try:
            url = server.stdout.readline().split(" at ")[1].split()[0]
            driver.get(url)
            seed = driver.find_element(By.ID, "seed")
            seed.send_keys(Keys.CONTROL, "a")
            seed.send_keys(str(args.seed), Keys.ENTER)
            WebDriverWait(driver, 30).until(
                lambda d: d.execute_script(
                    "const g = document.getElementById('grid');"
                    "return g.complete && g.naturalWidth > 0 && "
                    f"new URL(g.src).searchParams.get('seed') === '{args.seed}';"
                )
            )
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
            server.terminate()
            server.wait(timeout=30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
