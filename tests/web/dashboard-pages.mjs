// Dashboard pages in headless Chromium (issue 29, item 4): each page loads under the dashboard's policy with no
// console error or Content-Security-Policy violation, and is kept as a screenshot.
//   node tests/web/dashboard-pages.mjs <baseUrl> <screenshotPrefix> <path>...
// Screenshots: <prefix>-<n>.png for the n-th path (full page, 1400 px wide). Prints one JSON line of facts (each
// page's title and its visible text) or exits 1.
import { chromium } from 'playwright-core';

const [baseUrl, prefix, ...paths] = process.argv.slice(2);
if (!baseUrl || !prefix || paths.length === 0) {
  console.error('usage: node dashboard-pages.mjs <baseUrl> <screenshotPrefix> <path>...');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
function check(condition, message) { if (!condition) throw new Error('check failed: ' + message); }

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 });
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  const pages = [];
  for (const [i, path] of paths.entries()) {
    const response = await page.goto(baseUrl + path);
    check(response.status() === 200, `${path} answered HTTP ${response.status()}`);
    await page.waitForLoadState('networkidle');
    await page.screenshot({ path: `${prefix}-${i + 1}.png`, fullPage: true });
    const facts = await page.evaluate(() => ({ title: document.title, text: document.body.innerText, violations: window.__violations }));
    check(facts.violations.length === 0, `${path}: Content-Security-Policy violations: ${facts.violations.join('; ')}`);
    pages.push({ path, title: facts.title, text: facts.text });
  }
  check(problems.length === 0, 'browser reported problems:\n  ' + problems.join('\n  '));
  console.log(JSON.stringify({ pages }));
} catch (e) {
  console.error(e.stack || String(e));
  if (problems.length) console.error('browser problems:\n  ' + problems.join('\n  '));
  process.exitCode = 1;
} finally {
  await browser.close();
}
