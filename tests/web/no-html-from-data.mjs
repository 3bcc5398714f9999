// Feeds script-bearing data through every view of the search page and asserts that none of it becomes markup.
//   node tests/web/no-html-from-data.mjs <baseUrl> <payload> <beforeSceneId> <afterSceneId>
// The host (PageSecurityTests.cs) serves scenes whose file name and tile captions are <payload>; this driver adds it as
// a query text, a land-use label, a "toward" text and a bad scene id (an error message). After each view every
// tooltip of the map is opened. Passing means: no script ran (window.__xss unset, no dialog), no element the payload
// describes exists, nothing requested the payload's image URL, and the browser reported no Content-Security-Policy
// violation (which an inline handler parsed from data would cause); the tooltips show the payload as text. The
// Hangfire dashboard is loaded too: it must work under its own policy (its scripts ran, no violation).
// Prints one JSON line of facts and exits 0, or prints what failed and exits 1.
import { chromium } from 'playwright-core';

const [baseUrl, payload, beforeId, afterId] = process.argv.slice(2);
if (!baseUrl || !payload || !beforeId || !afterId) {
  console.error('usage: node no-html-from-data.mjs <baseUrl> <payload> <beforeSceneId> <afterSceneId>');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
function check(condition, message) {
  if (!condition) throw new Error('check failed: ' + message);
}

const browser = await chromium.launch({ executablePath, headless: true });
const problems = [];
const injectedRequests = [];
const dialogs = [];
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  // Installed through the DevTools protocol, so it runs whatever the page's policy allows.
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));
  });
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/x') injectedRequests.push(r.url()); });

  // Every tooltip of the map opened in turn: its text, and whether it holds any element besides text.
  const tooltips = () => page.evaluate(() => {
    const out = [];
    window.rscapretMap.map.eachLayer((l) => {
      if (!l.getTooltip || !l.getTooltip()) return;
      l.openTooltip(l.getBounds ? l.getBounds().getCenter() : undefined);
      const el = l.getTooltip().getElement();
      out.push({ text: el?.textContent ?? '', elements: el ? el.querySelectorAll('img, script, iframe, svg, a, [onerror], [onload]').length : 0 });
      l.closeTooltip();
    });
    return out;
  });
  const injected = () => page.evaluate(() => ({
    xss: window.__xss ?? null,
    violations: window.__violations ?? [],
    images: [...document.querySelectorAll('img')].filter((i) => i.getAttribute('src') === 'x').length,
    handlers: document.querySelectorAll('[onerror], [onload], [onclick]').length,
  }));

  const views = {};
  async function view(name, url, waitFor) {
    await Promise.all([page.waitForResponse((r) => waitFor(r.url())), page.goto(baseUrl + url)]);
    await page.waitForFunction(() => !/…$/.test(document.querySelector('#status').textContent));
    await page.waitForTimeout(300);
    const tips = await tooltips();
    const found = await injected();
    views[name] = { tooltips: tips.length, withPayload: tips.filter((t) => t.text.includes(payload)).length, elements: tips.reduce((s, t) => s + t.elements, 0), ...found,
      page: (await page.textContent('body')).includes(payload) };
  }

  const q = encodeURIComponent(payload);
  await view('search', `/?q=${q}&k=6`, (u) => u.includes('/api/search'));
  // Clicking a footprint opens its caption in a popup.
  const firstPath = page.locator('.leaflet-overlay-pane path.footprint').first();
  const box = await firstPath.boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForSelector('.leaflet-popup .popup-caption');
  views.search.popup = await page.textContent('.leaflet-popup .popup-caption');
  await view('heat', `/?heat=1&q=${q}&scene=${beforeId}`, (u) => u.includes('/api/heatmap'));
  await view('changes', `/?before=${beforeId}&after=${afterId}&toward=${q}&k=6`, (u) => u.includes('/api/changes'));
  await view('classes', `/?classes=${beforeId}&labels=${q}`, (u) => u.includes('/classes'));
  await view('error', `/?before=${q}&after=${afterId}`, (u) => u.includes('/api/changes'));
  views.error.message = await page.textContent('#error');
  await page.waitForFunction(() => document.querySelectorAll('#sceneList li.scene').length > 0);
  views.scenes = { rows: await page.locator('#sceneList li.scene').count(), withPayload: await page.locator('#sceneList li.scene', { hasText: payload }).count(), ...(await injected()) };

  // The dashboard under its own policy: its scripts run (jQuery and Hangfire's own), nothing is refused.
  const dashboard = await page.goto(baseUrl + '/hangfire');
  check(dashboard.status() === 200, `/hangfire answered HTTP ${dashboard.status()}`);
  await page.waitForLoadState('networkidle');
  const hangfire = await page.evaluate(() => ({ jquery: typeof window.jQuery, hangfire: typeof window.Hangfire, violations: window.__violations }));
  hangfire.jobsPageViolations = [];
  for (const path of ['/hangfire/jobs/succeeded', '/hangfire/recurring', '/hangfire/servers', '/hangfire/retries']) {
    await page.goto(baseUrl + path);
    await page.waitForLoadState('networkidle');
    hangfire.jobsPageViolations.push(...(await page.evaluate(() => window.__violations)).map((v) => `${path}: ${v}`));
  }

  for (const [name, v] of Object.entries(views)) {
    check(v.xss === null, `${name}: a script from the data ran (window.__xss = ${v.xss})`);
    check(v.images === 0 && v.handlers === 0 && !v.elements, `${name}: the data became markup (${v.images} images, ${v.handlers} handlers, ${v.elements ?? 0} tooltip elements)`);
    check(v.violations.length === 0, `${name}: Content-Security-Policy violations: ${v.violations.join('; ')}`);
  }
  check(views.search.tooltips > 0 && views.search.withPayload === views.search.tooltips, `search: caption tooltips ${views.search.withPayload} of ${views.search.tooltips} show the caption as text`);
  check(views.search.popup === payload, `search: the popup shows the caption as text: ${views.search.popup}`);
  check(views.changes.tooltips > 0 && views.changes.withPayload === views.changes.tooltips, `changes: ${views.changes.withPayload} of ${views.changes.tooltips} tooltips show the captions as text`);
  check(views.classes.tooltips > 0 && views.classes.withPayload === views.classes.tooltips, `classes: ${views.classes.withPayload} of ${views.classes.tooltips} tooltips show the label as text`);
  check(views.heat.page, 'heat: the query text is shown (as text)');
  check(views.error.message.includes('Error 400'), `error: ${views.error.message}`);
  check(views.scenes.withPayload >= 1, 'scenes: the file name is shown as text');
  check(dialogs.length === 0, 'dialogs opened: ' + dialogs.join('; '));
  check(injectedRequests.length === 0, 'the payload image was requested: ' + injectedRequests.join(', '));
  check(hangfire.jquery === 'function' && hangfire.hangfire === 'object', `the dashboard's scripts did not run: ${JSON.stringify(hangfire)}`);
  check(hangfire.violations.length === 0 && hangfire.jobsPageViolations.length === 0, `the dashboard broke its policy: ${JSON.stringify(hangfire)}`);
  check(problems.length === 0, 'browser reported problems:\n  ' + problems.join('\n  '));
  console.log(JSON.stringify({ views, hangfire }));
} catch (e) {
  console.error(e.stack || String(e));
  if (problems.length) console.error('browser problems:\n  ' + problems.join('\n  '));
  console.error(JSON.stringify({ injectedRequests, dialogs }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
