// Issue 30 on the map page in headless Chromium (Debian's): "where in the tile" — a search with localize=1 draws each
// result's hottest cells inside its footprint, the address keeps the choice, and the heat map then colours each
// stored cell (cells=1) instead of each tile.
//   node tests/web/map30-cells.mjs <baseUrl> <screenshotPrefix> <query>
// Screenshots: <prefix>-hot-1280.png (the first result selected, its hot cells over it), <prefix>-heat-cells-1280.png.
// Prints one JSON line of facts (MapPage30CellsTests.cs checks them) or exits 1.
import { chromium } from 'playwright-core';

const [baseUrl, prefix, query] = process.argv.slice(2);
if (!query) { console.error('usage: node map30-cells.mjs <baseUrl> <screenshotPrefix> <query>'); process.exit(2); }
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
let step = '';
const at = (name) => { step = name; };
function check(condition, message) { if (!condition) throw new Error('check failed: ' + message); }

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
const problems = [];
const facts = {};
const requests = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('request', (r) => { if (r.url().includes('/api/')) requests.push(r.url()); });

  at('search');
  // 1. The checkbox sends localize=1 and keeps it in the address; each result's hot cells are drawn.
  await page.goto(baseUrl + '/');
  await page.waitForFunction(() => window.rscapretMap);
  await page.fill('#q', query);
  await page.fill('#k', '3');
  await page.check('#whereInTile');
  const [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/search')), page.click('#search button[type=submit]')]);
  check(new URL(response.url()).searchParams.get('localize') === '1', 'localize=1 not sent: ' + response.url());
  check(response.status() === 200, `search answered ${response.status()}`);
  const body = await response.json();
  facts.results = body.features.length;
  facts.hotCellsFrom = body.features.map((f) => f.properties.hot_cells?.from ?? null);
  check(body.features.every((f) => f.properties.hot_cells && f.properties.hot_cells.geometry), 'a result without hot cells');
  await page.waitForFunction((n) => document.querySelectorAll('path.hot-cells').length >= n, body.features.length);
  facts.hotPaths = await page.locator('path.hot-cells').count();
  check(new URL(page.url()).searchParams.get('localize') === '1', 'localize not kept in the address: ' + page.url());

  at('inside');
  // 2. On the map each hot-cell drawing lies inside a result's footprint (screen boxes, 1 px of rounding).
  await page.click('#results li >> nth=0');   // selects and zooms onto the first result
  await page.waitForTimeout(700);
  const boxes = await page.evaluate(() => {
    const box = (el) => { const b = el.getBoundingClientRect(); return { x0: b.left, y0: b.top, x1: b.right, y1: b.bottom }; };
    return { hot: [...document.querySelectorAll('path.hot-cells')].map(box), footprints: [...document.querySelectorAll('path.footprint')].map(box) };
  });
  const inside = (h, f) => h.x0 >= f.x0 - 1 && h.y0 >= f.y0 - 1 && h.x1 <= f.x1 + 1 && h.y1 <= f.y1 + 1;
  facts.hotInsideFootprints = boxes.hot.filter((h) => boxes.footprints.some((f) => inside(h, f))).length;
  check(facts.hotInsideFootprints === boxes.hot.length, `${boxes.hot.length - facts.hotInsideFootprints} hot-cell drawings outside every footprint`);
  // The selected result's hot cells are drawn over it (later in the SVG), not hidden under its highlighted footprint.
  facts.hotOverFootprints = await page.evaluate(() => {
    const footprints = [...document.querySelectorAll('path.footprint')];
    return [...document.querySelectorAll('path.hot-cells')].every((h) =>
      footprints.every((f) => f.compareDocumentPosition(h) & Node.DOCUMENT_POSITION_FOLLOWING));
  });
  check(facts.hotOverFootprints, 'a footprint is drawn over hot cells');
  // The imagery under the view loaded before the screenshot (tiles that fail count as done).
  await page.waitForFunction(() => [...document.querySelectorAll('img.leaflet-tile')].every((t) => t.complete), null, { timeout: 20000 }).catch(() => {});
  await page.screenshot({ path: `${prefix}-hot-1280.png` });

  at('heat');
  // 3. With the box ticked the heat map asks cells=1 and draws stored cells one colour each.
  await page.click('#results li >> nth=0');
  const [heat] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/heatmap')), page.click('#heat')]);
  check(new URL(heat.url()).searchParams.get('cells') === '1', 'cells=1 not sent: ' + heat.url());
  check(heat.status() === 200, `heat map answered ${heat.status()}: ${await heat.text()}`);
  const heatBody = await heat.json();
  facts.heatTiles = heatBody.tiles;
  facts.heatCellTiles = heatBody.cell_tiles;
  await page.waitForFunction(() => document.querySelectorAll('path.heat-cell').length > 0);
  facts.heatCellPaths = await page.locator('path.heat-cell').count();
  facts.heatStatus = await page.textContent('#status');
  await page.waitForFunction(() => [...document.querySelectorAll('img.leaflet-tile')].every((t) => t.complete), null, { timeout: 20000 }).catch(() => {});
  await page.screenshot({ path: `${prefix}-heat-cells-1280.png` });
  check(problems.length === 0, problems.join('\n'));
  console.log(JSON.stringify(facts));
} catch (e) {
  console.error(`[${step}] ` + e.message);
  if (problems.length) console.error(problems.join('\n'));
  console.error('requests:\n' + requests.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
