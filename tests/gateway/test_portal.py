"""The web portal in a real headless browser (Debian's chromium and its driver): sign in with a
token, browse what the project may use, see the budget, preview and run a query, follow it, and
read the released cells as a table and a bar chart."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as until
from selenium.webdriver.support.ui import WebDriverWait

from tests.gateway.conftest import PROJECT, Sandbox

QUERY = "SELECT p.district, COUNT(*), AVG(p.property_count) FROM housing.properties p GROUP BY p.district"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        message = "Debian's chromium and chromium-driver are not installed (make test installs them: make browser)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    with webdriver.Chrome(service=Service(driver), options=options) as session:
        yield session


def test_sign_in_browse_run_and_see_table_and_chart(sandbox: Sandbox, browser: WebDriver) -> None:
    wait = WebDriverWait(browser, 120)
    browser.get(sandbox.url)
    browser.find_element(By.ID, "token").send_keys("wrong-token")
    browser.find_element(By.ID, "signin-button").click()
    wait.until(until.text_to_be_present_in_element((By.ID, "signin-error"), "valid API token"))
    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(sandbox.token)
    browser.find_element(By.ID, "signin-button").click()
    wait.until(until.visibility_of_element_located((By.ID, "workspace")))
    assert "signed in as ada" in browser.find_element(By.ID, "who").text
    assert PROJECT in browser.find_element(By.ID, "project").text
    wait.until(until.text_to_be_present_in_element((By.ID, "catalog"), "property_count"))
    catalog = browser.find_element(By.ID, "catalog").text
    assert "tax.income" in catalog and "annual_income" in catalog and "filter, aggregate" in catalog
    before = float(browser.find_element(By.ID, "budget-researcher").text)
    sql = browser.find_element(By.ID, "sql")
    sql.clear()
    sql.send_keys(QUERY)
    epsilon = browser.find_element(By.ID, "epsilon")
    epsilon.clear()
    epsilon.send_keys("0.5")
    browser.find_element(By.ID, "preview-button").click()
    wait.until(until.text_to_be_present_in_element((By.ID, "query-message"), "cost ε 0.500"))
    assert "Expected error (95 %) per released cell: count ±" in browser.find_element(By.ID, "query-message").text
    browser.find_element(By.ID, "run-button").click()
    wait.until(until.visibility_of_element_located((By.ID, "result")))
    rows = browser.find_elements(By.CSS_SELECTOR, "#result-table tr")
    assert len(rows) == 1 + 16 and "properties.district" in rows[0].text
    assert "95 % interval" in browser.find_element(By.ID, "result-note").text
    released = [r.text for r in rows[1:] if "withheld" not in r.text]
    assert released and all(" … " in r and "[" in r for r in released)  # each value with its interval
    assert browser.find_elements(By.CSS_SELECTOR, "#chart rect")  # a bar per released group
    assert float(browser.find_element(By.ID, "budget-researcher").text) == pytest.approx(before - 0.5, abs=1e-3)
    browser.find_element(By.ID, "sql").send_keys(" ORDER BY 1")
    browser.find_element(By.ID, "run-button").click()
    wait.until(until.text_to_be_present_in_element((By.ID, "query-message"), "ORDER BY is not allowed"))
