from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium")
    page = b.new_page(viewport={"width": 1200, "height": 900})
    page.goto("http://127.0.0.1:18765/")
    page.wait_for_timeout(3000)
    page.screenshot(path="/tmp/shot/page.png")
    print(page.inner_text("#card-wyoming"))
    b.close()
