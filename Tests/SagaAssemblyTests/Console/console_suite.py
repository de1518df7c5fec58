#!/usr/bin/env python3
"""The web console in a real browser (Debian's chromium, headless, through chromium-driver
and Selenium), against a running `fulfillment run`:

  console_suite.py BASE_URL TOKEN_FILE DATA_DIR FULFILLMENT_BINARY CONFIG SCREENSHOT_DIR

Checks: the overview's order count rises while orders flow, without a reload; the graph
shows every step with its figures and lists a step's recent failures on a click; an order's
timeline matches `fulfillment order --json`; a dead letter redriven from the page leaves the
DLT and its order completes; an order whose fields hold markup renders as text and runs
nothing; no page logs an error in the browser console. Each check saves a screenshot.
Prints one line per check; exit 1 on the first failure, with what was seen.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

os.environ.setdefault("SE_AVOID_STATS", "true")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

BASE, TOKEN_FILE, DATA_DIR, BINARY, CONFIG, SHOTS = sys.argv[1:7]
TOKEN = open(TOKEN_FILE).read().strip()
os.makedirs(SHOTS, exist_ok=True)
HOSTILE = '<img src=x onerror=alert(1)>'
CLOSER = '</script><script>alert(2)</script>'


def order(order_id, token="tok_visa", tier="standard", name="A. Buyer", line1="1 Main St", customer="c-1"):
    return {
        "order_id": order_id, "customer_id": customer, "customer_tier": tier, "currency": "USD",
        "items": [{"sku": "SKU-1", "quantity": 1, "unit_price": 10.0}],
        "payment": {"method": "card", "token": token},
        "shipping_address": {"name": name, "line1": line1, "city": "Springfield", "postal_code": "12345", "country": "US"},
        "email": "buyer@example.com",
    }


def api(path, body=None):
    data = None if body is None else ("\n".join(json.dumps(o) for o in body) if isinstance(body, list) else json.dumps(body)).encode()
    request = urllib.request.Request(BASE + path, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        request.add_header("Authorization", "Bearer " + TOKEN)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def wait(what, check, timeout=60.0, interval=0.25):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as error:  # noqa: BLE001 - the page may be between renders
            last = error
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")


def order_state(order_id):
    try:
        return (api("/api/orders/" + order_id).get("order") or {}).get("state")
    except Exception:  # noqa: BLE001 - not tracked yet
        return None


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-default-apps"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def console_errors(driver, page):
    errors = [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
    assert not errors, f"{page}: {len(errors)} error(s) in the browser console, the first: {[e.get('message') for e in errors[:3]]}"


def no_script_ran(driver, page):
    try:
        text = driver.switch_to.alert.text
        raise AssertionError(f"{page}: a script ran and opened an alert: {text}")
    except NoAlertPresentException:
        pass
    assert driver.execute_script("return document.querySelectorAll('img[src=\"x\"], script:not([src])').length") == 0, f"{page}: markup from an order became elements"


def shoot(driver, name):
    driver.save_screenshot(os.path.join(SHOTS, name + ".png"))


def check_overview(driver):
    driver.get(BASE + "/#overview")
    figure = lambda: driver.find_element(By.CSS_SELECTOR, '[data-figure="accepted"] .value').text.replace(",", "")
    before = int(wait("the overview's first frame", lambda: figure() if figure() not in ("", "–") else None))
    loads = driver.execute_script("return performance.getEntriesByType('navigation').length")
    api("/api/orders", [order(f"ui-flow-{i}", tier="vip" if i % 5 == 0 else "standard") for i in range(150)])
    after = int(wait("the accepted count to rise", lambda: int(figure()) if int(figure()) >= before + 150 else None))
    assert driver.execute_script("return performance.getEntriesByType('navigation').length") == loads, "the page reloaded"
    wait("a chart with data", lambda: driver.find_elements(By.CSS_SELECTOR, ".chart polyline"))
    shoot(driver, "overview")
    console_errors(driver, "overview")
    return f"accepted {before} -> {after} without a reload"


def check_graph(driver):
    driver.get(BASE + "/#graph")
    steps = ["payment", "inventory", "shipping", "notification", "compensation"]
    def figures():
        texts = {s: driver.find_element(By.CSS_SELECTOR, f'[data-figures="{s}"]').text for s in steps}
        return texts if all("in flight" in t and "retries" in t for t in texts.values()) else None
    texts = wait("every step's figures", figures)
    driver.find_element(By.CSS_SELECTOR, '[data-node="payment"]').click()
    wait("the payment step's recent failures", lambda: driver.find_elements(By.XPATH, "//h2[contains(., 'Recent failures: payment')]"))
    shoot(driver, "graph")
    console_errors(driver, "graph")
    return "; ".join(f"{s}: {t}" for s, t in texts.items())


def check_timeline(driver):
    wait("ui-retried to complete", lambda: order_state("ui-retried") == "completed")
    cli = json.loads(subprocess.run([BINARY, "order", "ui-retried", "--json", "--data-dir", DATA_DIR], check=True, capture_output=True).stdout)
    driver.get(BASE + "/#orders/ui-retried")
    rows = wait("the timeline", lambda: driver.find_elements(By.CSS_SELECTOR, "#timeline tr[data-event]"))
    shown = [(r.find_elements(By.TAG_NAME, "td")[2].text, r.find_elements(By.TAG_NAME, "td")[5].text) for r in rows]
    expected = [(h["event"], f'{h["topic"]}/{h["partition"]}/{h["offset"]}') for h in cli["history"]]
    assert shown == expected, f"the page shows {shown}, `order --json` says {expected}"
    assert any("retry" in event for event, _ in shown), "the retried order's timeline shows its retry"
    state = driver.find_element(By.CSS_SELECTOR, "[data-state]").get_attribute("data-state")
    assert state == cli["order"]["state"], f"state {state} vs {cli['order']['state']}"
    shoot(driver, "order-timeline")
    console_errors(driver, "orders")
    return f"{len(shown)} events match `order --json`"


def check_redrive(driver):
    wait("ui-parked to be parked for manual review", lambda: order_state("ui-parked") == "manual_review", timeout=90)
    driver.get(BASE + "/#dlq/payment.requested.dlt")
    box = wait("the parked order's letter", lambda: driver.find_element(By.CSS_SELECTOR, '#letters tr[data-order="ui-parked"] input[type=checkbox]'))
    token = driver.find_element(By.ID, "token")
    token.clear()
    token.send_keys(TOKEN)
    box.click()
    driver.find_element(By.ID, "redrive-selected").click()
    preview = wait("the dry-run preview", lambda: driver.find_element(By.ID, "redrive-preview"))
    assert "1 letter(s) would go back" in preview.text, preview.text
    shoot(driver, "dlq-preview")
    driver.find_element(By.ID, "confirm-redrive").click()
    done = wait("the redrive's result in place", lambda: driver.find_element(By.ID, "redrive-done"))
    assert "Redriven: 1" in done.text, done.text
    wait("ui-parked to complete after the redrive", lambda: order_state("ui-parked") == "completed", timeout=90)
    letter = wait("the letter marked redriven", lambda: driver.find_element(By.CSS_SELECTOR, '#letters tr[data-order="ui-parked"] .pill.completed'))
    pending = [t for t in api("/api/dlq")["topics"] if t["topic"] == "payment.requested.dlt"][0]
    shoot(driver, "dlq-redriven")
    console_errors(driver, "dlq")
    return f"redriven from the page, order completed, letter {letter.text}, {pending['pending']} pending on the DLT"


def check_hostile(driver):
    # Declined: dead-lettered at payment, and parked (this run's payments park when they give up).
    wait("the hostile order to end", lambda: order_state("ui-hostile") in ("compensated", "completed", "manual_review"), timeout=90)
    driver.get(BASE + "/#orders/ui-hostile")
    body = wait("the order's body", lambda: driver.find_element(By.ID, "order-body"))
    assert HOSTILE in body.text and CLOSER in body.text, f"the fields are not shown as text: {body.text}"
    no_script_ran(driver, "orders")
    driver.get(BASE + "/#dlq/payment.requested.dlt")
    cell = wait("the hostile letter", lambda: driver.find_element(By.CSS_SELECTOR, '#letters tr[data-order="ui-hostile"] .payload'))
    assert HOSTILE in cell.text, cell.text
    time.sleep(1.5)
    no_script_ran(driver, "dlq")
    shoot(driver, "hostile-as-text")
    console_errors(driver, "dlq with hostile fields")
    return "markup in an order's fields is shown as text on the order and dead-letter pages; nothing ran"


def check_topics(driver):
    driver.get(BASE + "/#topics")
    rows = wait("the topics table", lambda: driver.find_elements(By.CSS_SELECTOR, "#topics tr[data-topic]"))
    wait("a lag sparkline", lambda: driver.find_elements(By.CSS_SELECTOR, "#topics svg.spark"))
    shoot(driver, "topics")
    console_errors(driver, "topics")
    return f"{len(rows)} topics"


def main():
    api("/api/orders", [order("ui-retried", token="tok_transient_2"), order("ui-parked", token="tok_transient_5"),
                        order("ui-hostile", token="tok_decline", name=HOSTILE, line1=CLOSER, customer=HOSTILE)])
    driver = browser()
    failed = False
    try:
        for check in [check_overview, check_graph, check_timeline, check_redrive, check_hostile, check_topics]:
            try:
                print(f"ok {check.__name__}: {check(driver)}", flush=True)
            except Exception as error:  # noqa: BLE001 - report and go on to the next check
                failed = True
                shoot(driver, "failed-" + check.__name__)
                print(f"FAILED {check.__name__}: {error}", flush=True)
    finally:
        driver.quit()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
