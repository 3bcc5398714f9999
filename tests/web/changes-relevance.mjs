// The map's changes view with a toward text (issue 29, item 1): each pair says as text whether its after tile matches
// the text (its calibrated relevance), and the status says when no pair's after tile matches.
//   node tests/web/changes-relevance.mjs <baseUrl> <screenshotPrefix> <beforeSceneId> <afterSceneId>
// The host (ChangesRelevanceTests.cs) serves the shipped model over the demo mosaic and a copy with a farmland cell
// replaced by an airplane: "airplane" matches, "freeway" matches nothing. Screenshots: <prefix>-airplane.png,
// <prefix>-freeway.png. Prints one JSON line of facts or exits 1.
import { chromium } from 'playwright-core';

const [baseUrl, prefix, beforeId, afterId] = process.argv.slice(2);
if (!baseUrl || !prefix || !beforeId || !afterId) {
  console.error('usage: node changes-relevance.mjs <baseUrl> <screenshotPrefix> <beforeSceneId> <afterSceneId>');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
function check(condition, message) { if (!condition) throw new Error('check failed: ' + message); }

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });

  async function changes(toward) {
    await Promise.all([page.waitForResponse((r) => r.url().includes('/api/changes')),
      page.goto(`${baseUrl}/?before=${beforeId}&after=${afterId}&toward=${encodeURIComponent(toward)}&k=6`)]);
    await page.waitForFunction(() => /compared/.test(document.querySelector('#status').textContent), null, { timeout: 60000 });
    await page.waitForFunction(() => document.querySelectorAll('#results li.change').length > 0, null, { timeout: 60000 });
    // The first pair's thumbnails drawn before the screenshot (the list's images load lazily).
    await page.waitForFunction(() => [...document.querySelectorAll('#results li.change img')].slice(0, 2).every((i) => i.complete && i.naturalWidth > 0),
      null, { timeout: 60000 });
    await page.screenshot({ path: `${prefix}-${toward}.png` });
    return page.evaluate(() => ({
      status: document.querySelector('#status').textContent,
      pairs: document.querySelectorAll('#results li.change').length,
      matchTexts: [...document.querySelectorAll('#results li.change .match')].map((e) => e.textContent),
    }));
  }

  const airplane = await changes('airplane');
  check(airplane.matchTexts.length === airplane.pairs, `every pair says whether it matches: ${airplane.matchTexts.length} of ${airplane.pairs}`);
  check(!/No pair's after tile matches/.test(airplane.status), `airplane: ${airplane.status}`);
  const freeway = await changes('freeway');
  check(freeway.matchTexts.length === freeway.pairs, `freeway: ${freeway.matchTexts.length} of ${freeway.pairs} pairs say whether they match`);
  check(problems.length === 0, 'browser reported problems:\n  ' + problems.join('\n  '));
  console.log(JSON.stringify({ status: airplane.status, matchTexts: airplane.matchTexts, noneStatus: freeway.status, noneMatchTexts: freeway.matchTexts }));
} catch (e) {
  console.error(e.stack || String(e));
  if (problems.length) console.error('browser problems:\n  ' + problems.join('\n  '));
  process.exitCode = 1;
} finally {
  await browser.close();
}
