"""The example dashboard shows new activities in a real headless browser."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mongoengine_activity import templates as templates_module

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
APP = Path(__file__).resolve().parent.parent / "examples" / "dashboard" / "app.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver "
        "(apt-get install -y chromium chromium-driver)",
    ),
]

pytest.importorskip("starlette")


def load_dashboard() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboard_app", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def dashboard_url() -> Iterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    saved = dict(templates_module._templates)
    app = load_dashboard().create_app(simulate_every=None, heartbeat=1.0)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    assert server.started
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    server.should_exit = True
    thread.join(timeout=10)
    listener.close()
    templates_module._templates.clear()
    templates_module._templates.update(saved)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1000,700",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_dashboard_shows_new_activities_live(
    dashboard_url: str, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    app = load_dashboard()
    shop = app.ShopSimulation(seed=3)
    shop.step()  # shown by the page itself, rendered on the server

    browser.get(dashboard_url)
    wait = WebDriverWait(browser, 15)
    wait.until(lambda driver: driver.find_element(By.ID, "status").text == "live")
    before = len(browser.find_elements(By.CSS_SELECTOR, "#feed li"))
    for _ in range(6):
        shop.step()
    order = app.DemoOrder.objects.first()
    with app.activity_context(user_id="user-9"):
        app.log_activity("order_shipped", entity=order, data={"carrier": "UPS"})
    wait.until(
        lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#feed li")) >= 11
    )

    items = browser.find_elements(By.CSS_SELECTOR, "#feed li")
    lines = [item.text for item in items]
    live = [item.get_attribute("class") == "new" for item in items]
    screenshot = tmp_path / "dashboard.png"
    browser.save_screenshot(str(screenshot))
    shutil.copy(screenshot, Path(tempfile.gettempdir()) / "dashboard-test.png")

    assert before == 4  # three customers and the first order, from the server
    assert len(lines) == 11
    assert live == [True] * 7 + [False] * 4
    assert lines[0].split(" ", 1)[1] == f"user-9 shipped order {order.pk} via UPS"
    assert all(line.split()[1].startswith("user-") for line in lines[:7]), lines
    assert any("order_updated Order" in line and "status new" in line for line in lines)
    assert lines[-1].split()[1:3] == ["system", "customer_created"]
    assert screenshot.stat().st_size > 5000
