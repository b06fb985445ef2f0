#!/usr/bin/env python3
"""The web console in headless Chromium, driven by Selenium.

Run by scripts/console-test.sh, which starts a server and sets
CONSOLE_BASE_URL and MANAGEMENT_KEY (and CHROMIUM_BINARY,
CHROMEDRIVER_BINARY). Walks what an operator does: sign in, create an
application, a campaign and an achievement through the forms (the period's
live preview, the API's errors next to their fields), edit and delete, then
watch a customer's progress arrive (sent over the plain HTTP API) in the
live feed and the customer lookup. With SCREENSHOTS_DIR set, saves PNGs of
the main pages there. Exits non-zero with a message on the first failure.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["CONSOLE_BASE_URL"].rstrip("/")
KEY = os.environ["MANAGEMENT_KEY"]
CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")
SHOTS = os.environ.get("SCREENSHOTS_DIR")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
]


class Failure(Exception):
    """A check that did not hold."""


checks = 0


def check(condition, message):
    global checks
    checks += 1
    if not condition:
        raise Failure(message)


def api(method, path, body=None, auth=None):
    """A plain HTTP call to the API; returns (status, JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", auth or f"ManagementKey-v1 {KEY}")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Console:
    def __init__(self, driver):
        self.d = driver

    def wait(self, condition, what, timeout=15):
        try:
            return WebDriverWait(self.d, timeout).until(condition)
        except TimeoutException:
            raise Failure(f"timed out after {timeout} s waiting for {what}") from None

    def element(self, element_id, what=None):
        return self.wait(EC.visibility_of_element_located((By.ID, element_id)), what or f"#{element_id}")

    def text_in(self, element_id, text):
        self.wait(EC.text_to_be_present_in_element((By.ID, element_id), text), f"“{text}” in #{element_id}")
        return self.d.find_element(By.ID, element_id).text

    def type(self, element_id, value):
        el = self.element(element_id)
        el.clear()
        el.send_keys(value)
        return el

    def go(self, hash_route, ready_id):
        # A fresh load: a get() that changes only the hash (or nothing) would
        # leave the page as it is. sessionStorage stays with the tab.
        self.d.get("about:blank")
        self.d.get(f"{BASE}/console{hash_route}")
        return self.element(ready_id)

    def route(self, pattern):
        self.wait(lambda d: re.search(pattern, d.current_url), f"a URL matching {pattern}")
        return re.search(pattern, self.d.current_url)

    def shot(self, name):
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            self.d.save_screenshot(os.path.join(SHOTS, name))

    def field_error(self, name, words):
        """The API's message shown next to field `ach-<name>`, tied to it."""
        text = self.text_in(f"ach-{name}-error", words)
        field = self.d.find_element(By.ID, f"ach-{name}")
        check(field.get_attribute("aria-invalid") == "true", f"#ach-{name} is not aria-invalid")
        described = (field.get_attribute("aria-describedby") or "").split()
        check(f"ach-{name}-error" in described, f"#ach-{name} is not described by its error: {described}")
        return text


def sign_in(c):
    c.d.get(f"{BASE}/console")
    c.element("signin-key", "the sign-in form")
    check(c.d.find_element(By.CSS_SELECTOR, "label[for=signin-key]").text, "the key field has no label")
    check(not c.d.find_element(By.ID, "nav").is_displayed(), "the navigation shows before signing in")
    c.shot("signin.png")
    c.type("signin-key", "not-the-key")
    c.d.find_element(By.ID, "signin-submit").click()
    c.text_in("signin-key-error", "refused")
    c.type("signin-key", KEY)
    c.d.find_element(By.ID, "signin-submit").click()
    c.element("app-form", "the applications page")
    stored = c.d.execute_script("return Object.values(sessionStorage)")
    check(stored == [KEY], "the key is not (only) in sessionStorage")
    check(c.d.execute_script("return localStorage.length") == 0, "something went to localStorage")


def create_application_and_campaign(c):
    c.type("app-name", "Coffee shop")
    c.type("app-timezone", "Europe/Berlin")
    c.type("app-description", "Loyalty programme of the coffee shop")
    c.d.find_element(By.ID, "app-submit").click()
    app = int(c.route(r"#/apps/(\d+)$").group(1))
    c.element("campaign-form", "the application's page")
    c.type("campaign-name", "Autumn")
    c.d.find_element(By.ID, "campaign-submit").click()
    campaign = int(c.route(r"#/apps/\d+/campaigns/(\d+)$").group(1))
    c.element("new-achievement", "the campaign's page")
    return app, campaign


def create_achievement(c):
    c.d.find_element(By.ID, "new-achievement").click()
    c.element("achievement-form")
    for name in ["name", "title", "description", "target", "period", "recurrencePolicy", "activationPolicy",
                 "fixedStartDate", "endDate", "allowedLatenessSeconds", "allowRollbackAfterCompletion",
                 "endProgressOnTarget"]:
        labels = c.d.find_elements(By.CSS_SELECTOR, f"label[for=ach-{name}]")
        check(len(labels) == 1 and labels[0].text, f"field {name} has no label")
    c.type("ach-name", "coffee_lover")
    c.type("ach-title", "Coffee lover")
    c.type("ach-description", "Three coffees in a week")
    # A bad period: the live preview says what is wrong.
    c.type("ach-period", "1X")
    c.text_in("period-preview", "unknown period unit")
    c.type("ach-period", "1W_U")
    preview = c.text_in("period-preview", "Started now, this iteration would end at")
    check("Europe/Berlin" in preview and re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", preview),
          f"the preview shows no end date: {preview}")
    # Target 0 and an unknown period: the API's messages next to the fields.
    c.type("ach-target", "0")
    c.type("ach-period", "2Q")
    c.type("ach-allowedLatenessSeconds", "3600")
    Select(c.d.find_element(By.ID, "ach-recurrencePolicy")).select_by_value("on_expiration")
    c.d.find_element(By.ID, "achievement-submit").click()
    c.field_error("target", "greater than zero")
    c.field_error("period", "unknown period unit")
    check(c.d.switch_to.active_element.get_attribute("id") == "ach-target", "focus is not on the first bad field")
    c.type("ach-period", "1W_U")
    c.text_in("period-preview", "would end at")
    c.shot("create-form.png")
    c.type("ach-target", "3")
    c.d.find_element(By.ID, "achievement-submit").click()
    c.element("achievements-table", "the achievements list")
    row = c.d.find_element(By.CSS_SELECTOR, "#achievements-table tbody tr")
    check("coffee_lover" in row.text and "1W_U" in row.text, f"the new achievement is not listed: {row.text}")
    return int(row.get_attribute("data-id"))


def edit_and_delete(c, app, campaign, achievement):
    path = f"/v1/applications/{app}/campaigns/{campaign}/achievements"
    # The campaign runs: the target may not change, the title may.
    c.go(f"#/apps/{app}/campaigns/{campaign}/achievements/{achievement}", "achievement-form")
    c.type("ach-target", "4")
    c.d.find_element(By.ID, "achievement-submit").click()
    c.field_error("target", "cannot change /target")
    c.type("ach-target", "3")
    c.type("ach-title", "Coffee lover!")
    c.d.find_element(By.ID, "achievement-submit").click()
    c.text_in("notice", "saved")
    status, body = api("GET", f"{path}/{achievement}")
    check(status == 200 and body["title"] == "Coffee lover!" and body["target"] == 3, f"not saved as edited: {body}")

    status, spare = api("POST", path, {"name": "spare", "title": "Spare", "description": "", "target": 1, "period": "1D"})
    check(status == 201, f"could not create a spare achievement: {spare}")
    c.go(f"#/apps/{app}/campaigns/{campaign}", "achievements-table")
    delete = f"#achievements-table tr[data-id='{spare['id']}'] button.delete"
    c.d.find_element(By.CSS_SELECTOR, delete).click()
    c.element("confirm-cancel", "the confirmation dialog").click()
    c.wait(EC.invisibility_of_element_located((By.ID, "confirm")), "the dialog to close")
    check(api("GET", f"{path}/{spare['id']}")[0] == 200, "cancel deleted the achievement")
    c.d.find_element(By.CSS_SELECTOR, delete).click()
    c.element("confirm-ok", "the confirmation dialog").click()
    c.text_in("notice", "deleted")
    c.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, delete), "the deleted row to go")
    check(api("GET", f"{path}/{spare['id']}")[0] == 404, "the achievement was not deleted")
    c.shot("achievements.png")


def progress_in_feed_and_lookup(c, app, achievement):
    status, key = api("POST", f"/v1/applications/{app}/api_keys", {"name": "browser test"})
    check(status == 201, f"no integration key: {key}")
    auth = f"ApiKey-v1 {key['key']}"

    def event(delta, event_id):
        body = {"integrationId": "alice", "achievementName": "coffee_lover", "delta": delta, "eventId": event_id}
        status, result = api("POST", "/v1/progress_events", body, auth)
        check(status == 200 and result["outcome"] == "applied", f"event not applied: {result}")

    # The feed is open before anything happens: entries arrive live.
    c.go(f"#/apps/{app}/feed", "feed-status")
    c.text_in("feed-status", "Connected")
    event(1, "e1")
    started = "#feed li[data-type='achievement.started']"
    c.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, started)), "achievement.started in the feed")
    check("alice" in c.d.find_element(By.CSS_SELECTOR, started).text, "the started entry does not name alice")
    event(2, "e2")
    completed = "#feed li[data-type='achievement.completed']"
    c.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, completed)), "achievement.completed in the feed")
    text = c.d.find_element(By.CSS_SELECTOR, completed).text
    check("Coffee lover" in text or "coffee_lover" in text, f"the completed entry: {text}")
    check(c.d.find_element(By.ID, "feed").get_attribute("aria-live") == "polite", "the feed is not aria-live")
    c.shot("feed.png")

    c.go(f"#/apps/{app}/customers", "customer-integrationId")
    c.type("customer-integrationId", "alice")
    c.d.find_element(By.ID, "customer-submit").click()
    c.text_in(f"progress-{achievement}", "3 / 3")
    history = c.d.find_element(By.CSS_SELECTOR, f"section[data-achievement-id='{achievement}'] table.history")
    check("completed" in history.text, f"the history does not show the completed iteration: {history.text}")
    c.shot("customer.png")


def main():
    profile = tempfile.mkdtemp(prefix="console-test-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        c = Console(driver)
        sign_in(c)
        app, campaign = create_application_and_campaign(c)
        achievement = create_achievement(c)
        edit_and_delete(c, app, campaign, achievement)
        progress_in_feed_and_lookup(c, app, achievement)
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"
                  and "Failed to load resource" not in e.get("message", "")]
        check(not errors, f"errors in the browser's console: {errors}")
    except (Failure, WebDriverException) as e:
        where = driver.current_url if driver else "(no browser)"
        message = e.msg if isinstance(e, WebDriverException) else str(e)
        print(f"console browser test FAILED at {where}: {message}", file=sys.stderr)
        if driver:
            failure = os.path.join(tempfile.gettempdir(), "console-test-failure.png")
            driver.save_screenshot(failure)
            print(f"screenshot of the failure: {failure}", file=sys.stderr)
        return 1
    finally:
        if driver:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"console browser test: {checks} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
