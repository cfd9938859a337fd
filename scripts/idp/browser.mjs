// browser.mjs drives headless Chromium (Debian's /usr/bin/chromium, through
// playwright-core) through promgate's browser login, for the end-to-end tests:
//
//   1. open GATEWAY/oauth2/start?rd=/oauth2/userinfo, log in at the provider
//      as LOGIN_USER (the development login form takes any password);
//   2. read /oauth2/userinfo and run QUERY_PATH through the session;
//   3. sign out with the Sign out button of /ui/ (a same-origin POST), which
//      lands on the provider's logout page, confirm the logout there, and
//      run QUERY_PATH again.
//
// It prints one JSON line with what it saw (statuses, bodies, cookie names and
// attributes, never cookie values) and exits 0; the Go test judges it.
//
// Environment: GATEWAY (https://127.0.0.1:PORT), LOGIN_USER, QUERY_PATH,
// CHROMIUM (default /usr/bin/chromium), USER_DATA_DIR (a fresh folder).
import { chromium } from 'playwright-core';

const gateway = process.env.GATEWAY;
const user = process.env.LOGIN_USER || 'alice';
const queryPath = process.env.QUERY_PATH || '/api/v1/query?query=up';
const out = { hops: [] };

const context = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // The gateway's certificate comes from `promgate certs dev`, which this
  // fresh profile does not trust.
  ignoreHTTPSErrors: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('response', (r) => {
    const u = new URL(r.url());
    out.hops.push(`${r.status()} ${u.port} ${u.pathname}`);
  });

  await page.goto(`${gateway}/oauth2/start?rd=${encodeURIComponent('/oauth2/userinfo')}`);
  await page.waitForSelector('input[name=login]');
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', 'any password');
  await Promise.all([
    page.waitForURL(`${gateway}/oauth2/userinfo`),
    page.click('button[type=submit]'),
  ]);
  out.userinfo = JSON.parse(await page.locator('body').innerText());

  const cookies = await context.cookies(gateway);
  out.cookies = cookies.map((c) => ({ name: c.name, secure: c.secure, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path, domain: c.domain }));

  let resp = await page.goto(`${gateway}${queryPath}`);
  out.query = { status: resp.status(), body: await resp.text() };

  // The gateway's own page, through the session.
  resp = await page.goto(`${gateway}/ui/`);
  out.ui = { status: resp.status(), body: await resp.text() };

  // The gateway answers the POST with a page that moves the browser on to
  // the provider's end_session_endpoint, whose URL carries the ID token as
  // id_token_hint: only its scheme, port and path are reported.
  const [signOut] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/oauth2/sign_out'),
    page.click('form[action="/oauth2/sign_out"] button[type=submit]'),
  ]);
  out.signOut = { status: signOut.status() };
  await page.waitForURL((u) => !u.href.startsWith(gateway));
  await page.waitForLoadState();
  const landed = new URL(page.url());
  out.signOutLanding = `${landed.protocol} ${landed.port} ${landed.pathname}`;
  out.cookiesAfterSignOut = (await context.cookies(gateway)).map((c) => c.name);
  // The provider asks to confirm its own logout (oidc-provider's default page).
  const confirm = page.locator('button[name=logout]');
  if (await confirm.count() > 0) {
    await Promise.all([page.waitForURL((u) => u.pathname === '/session/end/success'), confirm.click()]);
    out.providerSignOut = await page.title();
  }

  resp = await page.goto(`${gateway}${queryPath}`);
  out.afterSignOut = { status: resp.status(), body: await resp.text() };

  // Without a session, a browser navigating to the page is sent to the login
  // (the provider still has its own session, so it comes straight back).
  out.hopsBeforeUI = out.hops.length;
  await page.goto(`${gateway}/ui/`);
  out.uiAfterSignOutURL = page.url();
} catch (err) {
  out.error = String(err && err.stack || err);
} finally {
  await context.close();
}
console.log(JSON.stringify(out));
