// Issue 29's map page items in headless Chromium (Debian's): the offline Natural Earth basemap, "more" (paging with
// offset), the after/before/near filters, and the heat map opened from the address zooming onto its bbox.
//   node tests/web/map29.mjs <baseUrl> <screenshotPrefix> [query]
// Screenshots: <prefix>-world-1280.png (world zoom, basemap only), <prefix>-more-1280.png, <prefix>-heat-1280.png,
// <prefix>-phone-390.png. Prints one JSON line of facts (MapPage29Tests.cs checks the screenshots' pixels) or exits 1.
import { chromium } from 'playwright-core';

const [baseUrl, prefix, query = 'a farm'] = process.argv.slice(2);
if (!baseUrl || !prefix) { console.error('usage: node map29.mjs <baseUrl> <screenshotPrefix> [query]'); process.exit(2); }
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
let step = '';
const at = (name) => { step = name; };
function check(condition, message) { if (!condition) throw new Error('check failed: ' + message); }

const browser = await chromium.launch({ executablePath, headless: true });
const problems = [];
const facts = {};
const searches = [];   // every /api/search request of the pages, in order
function watch(page) {
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if ((m.type() === 'error' && !/status of 400/.test(m.text())) || /basemap not loaded/.test(m.text())) problems.push('console: ' + m.text()); });
  // Offline: no request leaves the host.
  page.on('request', (r) => { if (r.url().includes('/api/search')) searches.push(r.url()); });
  page.on('request', (r) => { if (!r.url().startsWith(baseUrl) && !r.url().startsWith('data:')) problems.push('request off the host: ' + r.url()); });
  page.on('requestfailed', (r) => {
    if (r.url().includes('/tiles/') && r.failure()?.errorText === 'net::ERR_ABORTED') return;
    problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
}
try {
  const api = async (path) => { const r = await fetch(baseUrl + path); return { status: r.status, body: await r.json() }; };
  const scenes = (await api('/api/scenes?limit=10')).body.scenes.filter((s) => s.status === 'done' && Array.isArray(s.bbox));
  check(scenes.length > 0, 'no ingested scene with a footprint');
  const [w, s, e, n] = scenes[0].bbox;
  const all = (await api('/api/search?k=1000&latest=true&q=' + encodeURIComponent(query))).body.features;
  check(all.length >= 2, `${all.length} tiles in the catalogue; need 2 for paging`);
  const pageSize = all.length >= 4 ? 2 : 1;

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  watch(page);

  // 1. The basemap: land and borders drawn from the vendored file, at world zoom, before any search.
  await page.goto(baseUrl + '/');
  await page.waitForFunction(() => window.rscapretMap);
  check(await page.evaluate(() => window.rscapretMap.basemapReady), 'the basemap file did not load');
  facts.basemapFeatures = await page.evaluate(() => window.rscapretMap.basemap.getLayers().length);
  check(facts.basemapFeatures === 2, `basemap has ${facts.basemapFeatures} features, expected land and borders`);
  facts.landPaths = await page.locator('.leaflet-basemap-pane path.basemap-land').count();
  facts.borderPaths = await page.locator('.leaflet-basemap-pane path.basemap-border').count();
  check(facts.landPaths === 1 && facts.borderPaths === 1, `basemap paths: ${facts.landPaths} land, ${facts.borderPaths} borders`);
  const paneZ = await page.evaluate(() => [getComputedStyle(window.rscapretMap.map.getPane('basemap')).zIndex, getComputedStyle(window.rscapretMap.map.getPane('tilePane')).zIndex].map(Number));
  check(paneZ[0] < paneZ[1], `basemap pane (z ${paneZ[0]}) is not under the imagery (z ${paneZ[1]})`);
  const mapBox = await page.locator('#map').boundingBox();
  const toPage = (lat, lon) => page.evaluate(([la, lo, b]) => {
    const p = window.rscapretMap.map.latLngToContainerPoint([la, lo]);
    return { x: Math.round(b.x + p.x), y: Math.round(b.y + p.y) };
  }, [lat, lon, mapBox]);
  facts.land = [await toPage(-8, -52), await toPage(23, 12), await toPage(63, 100)];     // Brazil, Sahara, Siberia
  facts.sea = [await toPage(-35, -20), await toPage(-15, -110), await toPage(-40, 75)]; // South Atlantic, Pacific, Indian Ocean
  await page.screenshot({ path: `${prefix}-world-1280.png` });

  at('filters');
  // 2. The filters: typed in the page, sent to the API, kept in the address and read back from it.
  const near = `${((w + e) / 2).toFixed(5)},${((s + n) / 2).toFixed(5)},50000`;
  await page.fill('#q', query);
  await page.fill('#k', String(pageSize));
  await page.fill('#fAfter', '2000-01-01');
  await page.fill('#fBefore', '2100-01-01');
  await page.fill('#fNear', near);
  let [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/search')), page.click('#search button[type=submit]')]);
  const sent = new URL(response.url()).searchParams;
  check(sent.get('after') === '2000-01-01' && sent.get('before') === '2100-01-01' && sent.get('near') === near, 'filters not sent: ' + response.url());
  check(response.status() === 200, `filtered search answered ${response.status()}`);
  const address = new URL(page.url()).searchParams;
  check(address.get('after') === '2000-01-01' && address.get('near') === near, 'filters not in the address: ' + page.url());
  await page.fill('#fAfter', '2100-01-01');
  [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/search')), page.click('#search button[type=submit]')]);
  check(response.status() === 400, 'after >= before was not refused');
  await page.waitForSelector('#error:not([hidden])');
  facts.filterError = await page.textContent('#error');
  at('filters from the address');
  // Opening the address fills the inputs back.
  const addressUrl = `${baseUrl}/?q=${encodeURIComponent(query)}&k=${pageSize}&after=2000-01-01&before=2100-01-01&near=${encodeURIComponent(near)}`;
  const sentBefore = searches.length;
  await page.goto(addressUrl);
  await page.waitForFunction(() => document.querySelector('#status').textContent.includes('found') || !document.querySelector('#error').hidden);
  check(searches.length === sentBefore + 1 && new URL(searches.at(-1)).searchParams.get('near') === near, 'the address did not search with its filters: ' + searches.slice(sentBefore));
  check(await page.inputValue('#fAfter') === '2000-01-01' && await page.inputValue('#fBefore') === '2100-01-01' && await page.inputValue('#fNear') === near, 'filter inputs not filled from the address');

  at('more');
  // 3. "More": pages of pageSize appended; the rows equal the tail of one search with a larger k.
  await page.fill('#fAfter', ''); await page.fill('#fBefore', ''); await page.fill('#fNear', '');
  [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/search')), page.click('#search button[type=submit]')]);
  await page.waitForFunction((k) => document.querySelectorAll('#results li').length === k, pageSize);
  check(await page.locator('#moreResults').isVisible(), '"More" hidden after a full page');
  [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/search')), page.click('#moreResults')]);
  check(new URL(response.url()).searchParams.get('offset') === String(pageSize), 'more did not send offset: ' + response.url());
  const secondPage = (await response.json()).features.length;
  await page.waitForFunction((n) => document.querySelectorAll('#results li').length === n, pageSize + secondPage);
  // The page keeps one acquisition per place (latest=true; a.tif and b.tif are the same ground).
  const larger = (await api(`/api/search?k=${pageSize + secondPage}&latest=true&q=${encodeURIComponent(query)}`)).body.features;
  const listed = await page.$$eval('#results li', (lis) => lis.map((li) => Number(li.dataset.tileId)));
  check(JSON.stringify(listed) === JSON.stringify(larger.map((f) => f.properties.tile_id)), `rows ${listed} differ from k=${larger.length}'s ${larger.map((f) => f.properties.tile_id)}`);
  facts.moreRows = listed.length;
  facts.footprintPaths = await page.locator('.leaflet-overlay-pane path.footprint').count();
  check(facts.footprintPaths === larger.filter((f) => f.geometry).length, `${facts.footprintPaths} footprints after more`);
  const metas = await page.$$eval('#results .meta', (m) => m.map((x) => x.textContent));
  check(metas.every((m, i) => m.startsWith(`#${i + 1} `)), 'ranks not continuous: ' + metas.join(' | '));
  await page.waitForFunction(() => [...document.querySelectorAll('#results img')].every((i) => i.complete), null, { timeout: 30000 });
  await page.screenshot({ path: `${prefix}-more-1280.png` });

  at('heat');
  // 4. Heat map from the address: zooms onto its bbox's tiles instead of staying at world zoom.
  const pad = 2;
  const bbox = [w - pad, s - pad, e + pad, n + pad].map((v) => v.toFixed(4)).join(',');
  [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/heatmap')), page.goto(`${baseUrl}/?heat=1&q=${encodeURIComponent(query)}&bbox=${bbox}`)]);
  check(response.status() === 200, `heat map answered ${response.status()}`);
  await page.waitForFunction(() => document.querySelectorAll('path.heat-footprint').length > 0);
  await page.waitForTimeout(500);
  facts.heatZoom = await page.evaluate(() => window.rscapretMap.map.getZoom());
  facts.heatCentreInBbox = await page.evaluate(([w2, s2, e2, n2]) => { const c = window.rscapretMap.map.getCenter(); return c.lng >= w2 && c.lng <= e2 && c.lat >= s2 && c.lat <= n2; }, [w, s, e, n]);
  check(facts.heatZoom >= 10 && facts.heatCentreInBbox, `heat map at zoom ${facts.heatZoom}, centre in the scene: ${facts.heatCentreInBbox}`);
  await page.screenshot({ path: `${prefix}-heat-1280.png` });
  await page.close();

  at('phone');
  // 5. A phone: the map keeps at least half the screen; the basemap is there too.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true });
  watch(phone);
  await Promise.all([phone.waitForResponse((r) => r.url().includes('/api/search')), phone.goto(`${baseUrl}/?q=${encodeURIComponent(query)}&k=${pageSize}`)]);
  await phone.waitForFunction((k) => document.querySelectorAll('#results li').length === k, pageSize);
  check(await phone.evaluate(() => window.rscapretMap.basemapReady), 'phone: basemap not loaded');
  const phoneMap = await phone.locator('#map').boundingBox();
  facts.phoneMap = { width: Math.round(phoneMap.width), height: Math.round(phoneMap.height) };
  check(phoneMap.height >= 844 / 2 && phoneMap.width >= 380, `phone map ${phoneMap.width}x${phoneMap.height}`);
  await phone.screenshot({ path: `${prefix}-phone-390.png` });
  await phone.screenshot({ path: `${prefix}-phone-390-full.png`, fullPage: true });
  check(problems.length === 0, problems.join('\n'));
  console.log(JSON.stringify(facts));
} catch (e) {
  console.error(`[${step}] ` + e.message);
  if (problems.length) console.error(problems.join('\n'));
  console.error('searches:\n' + searches.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
