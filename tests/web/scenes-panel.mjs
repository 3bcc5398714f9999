// Drives the scenes panel of the search page of `rscapret serve` in headless Chromium (Debian's), at desktop
// (1280x800) and phone (390x844) sizes.
//   node tests/web/scenes-panel.mjs <baseUrl> <screenshotPrefix> [query]
// Screenshots: <prefix>-desktop.png, <prefix>-phone.png (the whole page) and <prefix>-phone-top.png (one screen).
// Checks: a row per scene of GET /api/scenes with its status, date, tiles, coverage, warnings and out-of-range flag;
// clicking a row zooms the map onto the scene and draws that scene's own imagery; no scene field is interpreted as
// HTML; search results of out-of-range scenes are marked. Exits 0 and prints one JSON line of facts when every
// check passes; otherwise prints what failed and exits 1.
import { chromium } from 'playwright-core';

const [baseUrl, prefix, query = 'a farm'] = process.argv.slice(2);
if (!baseUrl || !prefix) {
  console.error('usage: node scenes-panel.mjs <baseUrl> <screenshotPrefix> [query]');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

function check(condition, message) {
  if (!condition) throw new Error('check failed: ' + message);
}

const browser = await chromium.launch({ executablePath, headless: true });
const problems = [];

function watch(page, label) {
  page.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`${label}: console error: ${m.text()}`); });
  page.on('dialog', (d) => { problems.push(`${label}: a dialog opened: ${d.message()}`); d.dismiss(); });
  page.on('requestfailed', (r) => {
    if (r.url().includes('/tiles/') && r.failure()?.errorText === 'net::ERR_ABORTED') return;   // Leaflet cancels tiles it no longer needs
    // A request for the injected <img src=x> would mean a scene path became markup.
    problems.push(`${label}: request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('request', (r) => { if (/\/x$/.test(new URL(r.url()).pathname)) problems.push(`${label}: the page requested ${r.url()}`); });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${label}: HTTP ${r.status()} for ${r.url()}`); });
}

// The panel's rows against the API's own answer: one per scene, in order, every field as text.
async function checkRows(page, api) {
  await page.waitForFunction((n) => document.querySelectorAll('#sceneList li.scene').length === n, api.scenes.length);
  const rows = await page.$$eval('#sceneList li.scene', (lis) => lis.map((li) => ({
    id: li.dataset.sceneId ?? null,
    path: li.querySelector('.scene-path')?.textContent ?? '',
    status: li.querySelector('.badge[class*="status-"]')?.textContent ?? '',
    oor: li.querySelectorAll('.badge.oor').length,
    meta: li.querySelector('.meta')?.textContent ?? '',
    warnings: [...li.querySelectorAll('.scene-warning')].map((w) => w.textContent),
    error: li.querySelector('.scene-error')?.textContent ?? null,
  })));
  api.scenes.forEach((s, i) => {
    const r = rows[i];
    check(r.path === s.path, `row ${i + 1} path '${r.path}', API '${s.path}'`);
    check(r.id === (s.id == null ? null : String(s.id)), `row ${i + 1} scene id`);
    check(r.status === s.status, `row ${i + 1} status '${r.status}', API '${s.status}'`);
    check(r.oor === (s.out_of_range ? 1 : 0), `row ${i + 1} out-of-range flag`);
    check(r.meta.includes(s.acquired_at ? s.acquired_at.slice(0, 10) : 'date unknown'), `row ${i + 1} date in '${r.meta}'`);
    check(r.meta.includes(`${s.tiles} tile`), `row ${i + 1} tiles in '${r.meta}'`);
    const coverage = { measured: `coverage ${(Number(s.coverage) * 100).toFixed(1)}%`, no_valid_pixels: 'no valid pixels (nodata throughout)' }[s.coverage_state] ?? 'coverage not measured';
    check(['measured', 'no_valid_pixels', 'not_measured'].includes(s.coverage_state), `row ${i + 1} coverage_state '${s.coverage_state}'`);
    check(r.meta.includes(coverage), `row ${i + 1} coverage in '${r.meta}'`);
    check(r.warnings.length === s.warnings.length && s.warnings.every((w, j) => r.warnings[j].endsWith(w)), `row ${i + 1} warnings ${JSON.stringify(r.warnings)}`);
    if (s.status === 'failed') check(r.error === 'error: ' + s.error, `row ${i + 1} error '${r.error}'`);
  });
  check(await page.textContent('#scenesCount') === `(${api.total})`, 'the panel counts the scenes');
  return rows;
}

// No scene field became markup: no element but the panel's own, the injected handler never ran.
async function checkNoMarkup(page) {
  const injected = await page.evaluate(() => ({
    xss: window.__xss ?? null,
    images: document.querySelectorAll('#side img:not([src^="/api/tiles/"]):not([src^="api/tiles/"])').length,
    sceneImages: document.querySelectorAll('#sceneList img, #sceneList script, #sceneList iframe').length,
  }));
  check(injected.xss === null, 'a script from a scene path ran');
  check(injected.sceneImages === 0 && injected.images === 0, `markup from data in the page: ${JSON.stringify(injected)}`);
}

// Clicks a row and waits for the map to settle; returns the view and whether it holds the scene.
async function clickRow(page, scene) {
  const moved = page.evaluate(() => new Promise((resolve) => window.rscapretMap.map.once('moveend', resolve)));
  await page.click(`#sceneList li.scene[data-scene-id="${scene.id}"]`);
  await moved;
  return page.evaluate((b) => {
    const m = window.rscapretMap.map;
    const v = m.getBounds();
    return {
      zoom: m.getZoom(), center: [m.getCenter().lat, m.getCenter().lng],
      holds: v.contains([[b[1], b[0]], [b[3], b[2]]]),
      // How much of the view the scene's box fills (fitBounds makes it most of one side).
      fill: Math.max((b[2] - b[0]) / (v.getEast() - v.getWest()), (b[3] - b[1]) / (v.getNorth() - v.getSouth())),
    };
  }, scene.bbox);
}

async function sceneImageryLoaded(page, id) {
  await page.waitForFunction(() => {
    const tiles = [...document.querySelectorAll('.scene-imagery img.leaflet-tile')];
    return tiles.length > 0 && tiles.every((t) => t.complete && t.classList.contains('leaflet-tile-loaded'));
  }, null, { timeout: 60000 });
  const srcs = await page.$$eval('.scene-imagery img.leaflet-tile', (imgs) => imgs.map((i) => i.src));
  check(srcs.every((s) => s.includes(`scene=${id}`)), `scene imagery tiles ask for scene ${id}: ${srcs[0]}`);
  return srcs.length;
}

try {
  // Desktop.
  const desktop = await browser.newPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  watch(desktop, 'desktop');
  const [scenesResponse] = await Promise.all([
    desktop.waitForResponse((r) => new URL(r.url()).pathname === '/api/scenes'),
    desktop.goto(baseUrl + '/'),
  ]);
  check(scenesResponse.status() === 200, `GET /api/scenes answered ${scenesResponse.status()}`);
  const api = await scenesResponse.json();
  check(api.scenes.length >= 3 && api.scenes.length === api.total, `${api.scenes.length} scenes of ${api.total}`);
  await desktop.waitForFunction(() => window.L && window.rscapretMap);
  const rows = await checkRows(desktop, api);
  check(await desktop.locator('#moreScenes').isHidden(), 'no "more" button when every scene is listed');
  await checkNoMarkup(desktop);
  const marked = api.scenes.find((s) => s.path.includes('<img'));
  check(marked, 'the API lists the scene whose file name holds markup');
  check(rows.some((r) => r.path === marked.path), 'its path is shown as text, as it is');

  // Clicking a row zooms onto its scene and shows its own imagery; another row moves there.
  const world = await desktop.evaluate(() => window.rscapretMap.map.getZoom());
  const withBox = api.scenes.filter((s) => s.bbox && s.status === 'done');
  check(withBox.length >= 2, 'two complete scenes to click');
  const first = await clickRow(desktop, withBox[0]);
  check(first.zoom > world + 5 && first.holds && first.fill > 0.5, `zoomed onto scene ${withBox[0].id}: ${JSON.stringify(first)} from zoom ${world}`);
  check(await desktop.locator(`#sceneList li.scene.selected[data-scene-id="${withBox[0].id}"]`).count() === 1, 'the clicked row is selected');
  check(await desktop.locator('.leaflet-overlay-pane path.scene-outline').count() === 1, 'the scene box is outlined');
  check(await desktop.locator('#allImagery').isVisible(), '"Show all scenes" is offered');
  const firstTiles = await sceneImageryLoaded(desktop, withBox[0].id);
  const far = withBox.find((s) => Math.abs(s.bbox[0] - withBox[0].bbox[0]) > (withBox[0].bbox[2] - withBox[0].bbox[0])) ?? withBox[1];
  const second = await clickRow(desktop, far);
  check(second.holds && (second.center[0] !== first.center[0] || second.center[1] !== first.center[1]), `moved to scene ${far.id}: ${JSON.stringify(second)}`);
  check(await desktop.locator('#sceneList li.scene.selected').count() === 1, 'one row selected at a time');
  check(await desktop.locator('.leaflet-overlay-pane path.scene-outline').count() === 1, 'one scene outline at a time');
  await sceneImageryLoaded(desktop, far.id);
  await checkNoMarkup(desktop);
  await desktop.waitForTimeout(400);   // Leaflet's tile fade-in
  await desktop.screenshot({ path: `${prefix}-desktop.png` });

  // A row without a footprint (the failed scene) says so, and "Show all scenes" drops the selection.
  const failed = api.scenes.find((s) => s.status === 'failed');
  if (failed) {
    await desktop.click(`#sceneList li.scene:has(.badge.status-failed)`);
    await desktop.waitForSelector('#scenesError:not([hidden])');
    check((await desktop.textContent('#scenesError')).includes('no footprint'), 'a scene without a footprint says so');
  }
  await desktop.click(`#sceneList li.scene[data-scene-id="${far.id}"]`);
  await desktop.click('#allImagery');
  check(await desktop.locator('.leaflet-overlay-pane path.scene-outline').count() === 0 && await desktop.locator('.scene-imagery').count() === 0,
    '"Show all scenes" removes the outline and the scene layer');
  check(await desktop.locator('#sceneList li.scene.selected').count() === 0, 'no row selected after "Show all scenes"');

  // Search results of a scene far outside the model's range are marked.
  await desktop.fill('#q', query);
  await desktop.fill('#k', '100');
  const [searchResponse] = await Promise.all([
    desktop.waitForResponse((r) => r.url().includes('/api/search')),
    desktop.click('#search button[type=submit]'),
  ]);
  const hits = (await searchResponse.json()).features;
  await desktop.waitForFunction((n) => document.querySelectorAll('#results li').length === n, hits.length);
  const flagged = await desktop.$$eval('#results li', (lis) => lis.map((li) => li.querySelectorAll('.badge.oor').length));
  const expected = hits.map((h) => (h.properties.out_of_range ? 1 : 0));
  check(JSON.stringify(flagged) === JSON.stringify(expected), `out-of-range marks ${flagged} for ${expected}`);
  const outOfRangeHits = expected.filter((x) => x).length;
  check(outOfRangeHits >= 1 && outOfRangeHits < hits.length, `${outOfRangeHits} of ${hits.length} hits out of range`);
  await desktop.waitForFunction(() => [...document.querySelectorAll('#results img')].every((i) => i.complete), null, { timeout: 30000 });
  await checkNoMarkup(desktop);
  await desktop.locator('#results .badge.oor').first().scrollIntoViewIfNeeded();
  await desktop.waitForTimeout(400);   // Leaflet's tile fade-in
  await desktop.screenshot({ path: `${prefix}-desktop-search.png` });
  await desktop.close();

  // Phone: nothing wider than the screen, the map first and big enough, the rows readable and clickable.
  const phoneContext = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true });
  const phone = await phoneContext.newPage();
  watch(phone, 'phone');
  await phone.goto(baseUrl + '/');
  await phone.waitForFunction(() => window.L && window.rscapretMap);
  await checkRows(phone, api);
  await checkNoMarkup(phone);
  const layout = await phone.evaluate(() => {
    const box = (sel) => { const r = document.querySelector(sel).getBoundingClientRect(); return { x: r.x, y: r.y, width: r.width, height: r.height }; };
    return {
      scrollWidth: document.documentElement.scrollWidth, map: box('#map'), side: box('#side'), header: box('header'),
      rows: [...document.querySelectorAll('#sceneList li.scene')].map((li) => { const r = li.getBoundingClientRect(); return { x: r.x, right: r.right, height: r.height }; }),
    };
  });
  check(layout.scrollWidth <= 390, `the page is ${layout.scrollWidth} px wide on a 390 px screen`);
  check(layout.map.width >= 370 && layout.map.height >= 300, `map ${JSON.stringify(layout.map)} on the phone`);
  check(layout.side.y >= layout.map.y + layout.map.height - 1, `the side panel below the map: ${JSON.stringify(layout)}`);
  check(layout.rows.every((r) => r.x >= 0 && r.right <= 390 && r.height >= 30), `scene rows within the screen: ${JSON.stringify(layout.rows)}`);
  await phone.screenshot({ path: `${prefix}-phone-top.png` });
  const phoneWorld = await phone.evaluate(() => window.rscapretMap.map.getZoom());
  // The list scrolls in its own panel below the map (issue 29's phone layout): scrolled to its end, a tap on a row
  // zooms the map, which is in view.
  await phone.evaluate(() => { window.scrollTo(0, document.documentElement.scrollHeight); const side = document.querySelector('#side'); side.scrollTop = side.scrollHeight; });
  const tapped = await clickRow(phone, withBox[0]);
  check(tapped.zoom > phoneWorld + 5 && tapped.holds, `zoomed onto scene ${withBox[0].id} on the phone: ${JSON.stringify(tapped)}`);
  await phone.waitForFunction(() => { const r = document.querySelector('#map').getBoundingClientRect(); return r.top >= -1 && r.bottom <= window.innerHeight + 1; });
  await sceneImageryLoaded(phone, withBox[0].id);
  await phone.waitForTimeout(400);
  await phone.screenshot({ path: `${prefix}-phone.png`, fullPage: true });
  await phoneContext.close();

  check(problems.length === 0, 'browser reported problems:\n  ' + problems.join('\n  '));
  console.log(JSON.stringify({ scenes: api.scenes.length, rows: rows.length, world, first, second, firstTiles, outOfRangeHits, hits: hits.length, phone: layout, tapped }));
} catch (e) {
  console.error(e.stack || String(e));
  if (problems.length) console.error('browser problems:\n  ' + problems.join('\n  '));
  process.exitCode = 1;
} finally {
  await browser.close();
}
