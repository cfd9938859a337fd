// console.mjs drives headless Chromium (Debian's /usr/bin/chromium, through
// playwright-core) through promgate's security console, for the console's
// end-to-end test:
//
//   1. open GATEWAY/ui/ without a session: the gateway sends the browser to
//      the provider's login, where it logs in as LOGIN_USER (the development
//      login form takes any password) and comes back to the console;
//   2. visit every path of PAGES (a JSON list of [name, path]) at 1280x800,
//      save a full-page screenshot SHOTS/<LOGIN_USER>-<name>.png, run
//      axe-core on it, and report what it shows: its status, title, CSP
//      header, whole HTML, the detector and edge tables, the script
//      elements the DOM holds, whether an injected script ran, and where
//      the first Tab lands (the skip link);
//   3. visit every page again at a phone's width (390x844), reporting how
//      wide each renders, and save SHOTS/<LOGIN_USER>-overview-phone.png.
//
// axe-core is evaluated through the DevTools protocol, which the page's CSP
// does not govern; the pages themselves run no script at all.
//
// It prints one JSON line and exits 0; the Go test judges it.
//
// Environment: GATEWAY, LOGIN_USER, PAGES, SHOTS, CHROMIUM (default
// /usr/bin/chromium), USER_DATA_DIR (a fresh folder), and DEV_LOGIN=1 for
// the sign-in page of promgate demo's development provider (a button per
// user) instead of oidc-provider's login form.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const gateway = process.env.GATEWAY;
const user = process.env.LOGIN_USER || 'alice';
const pages = JSON.parse(process.env.PAGES || '[]');
const shots = process.env.SHOTS;
const out = { pages: [] };

const context = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: true,
  viewport: { width: 1280, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });

  await page.goto(`${gateway}/ui/`);
  if (process.env.DEV_LOGIN) {
    // promgate demo's development provider: one button per user.
    await Promise.all([
      page.waitForURL(`${gateway}/ui/`),
      page.click(`button[name=user][value=${user}]`),
    ]);
  } else {
    await page.waitForSelector('input[name=login]');
    await page.fill('input[name=login]', user);
    await page.fill('input[name=password]', 'any password');
    await Promise.all([
      page.waitForURL(`${gateway}/ui/`),
      page.click('button[type=submit]'),
    ]);
  }
  out.landed = new URL(page.url()).pathname;

  for (const [name, path] of pages) {
    consoleErrors.length = 0;
    const resp = await page.goto(`${gateway}${path}`);
    await page.waitForLoadState('load');
    const p = { name, path, status: resp.status(), csp: resp.headers()['content-security-policy'] || '' };
    p.title = await page.title();
    p.html = await page.content();
    p.text = await page.locator('body').innerText();
    p.detectors = await page.$$eval('table.detectors tbody tr', (rows) => rows.map((r) => [
      (r.querySelector('code') || {}).textContent || '', (r.querySelector('.state') || {}).textContent || '']));
    p.newEdges = await page.$$eval('tr.new', (rows) => rows.map((r) => Array.from(r.cells).map((c) => c.textContent)));
    p.scripts = await page.$$eval('script', (s) => s.length);
    p.pwned = await page.evaluate(() => window.__pwned === 1);
    await page.screenshot({ path: `${shots}/${user}-${name}.png`, fullPage: true });
    await page.evaluate(axeSource);
    const axe = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    p.violations = axe.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
    // Keyboard: the first Tab reaches the skip link, which moves focus to
    // the page's main content.
    await page.keyboard.press('Tab');
    p.firstFocus = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
    await page.keyboard.press('Enter');
    p.afterSkip = await page.evaluate(() => location.hash);
    p.consoleErrors = [...consoleErrors];
    out.pages.push(p);
  }

  await page.setViewportSize({ width: 390, height: 844 });
  out.phone = [];
  for (const [name, path] of pages) {
    await page.goto(`${gateway}${path}`);
    out.phone.push([name, await page.evaluate(() => document.documentElement.scrollWidth)]);
  }
  await page.goto(`${gateway}/ui/`);
  out.phoneScroll = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.screenshot({ path: `${shots}/${user}-overview-phone.png`, fullPage: true });
} catch (err) {
  out.error = String(err && err.stack || err);
} finally {
  await context.close();
}
console.log(JSON.stringify(out));
