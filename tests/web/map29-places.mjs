// Issue 29's remaining map items in headless Chromium (Debian's), over two acquisitions of the same ground (NAIP 2018
// and 2020) and one place seen once: one acquisition per place in the results and the heat map (the newest, or the
// one "as of" a date), the selected hit on its own scene's imagery, the changes view's before/after flip, the scene
// filter and the downloads, "similar tiles" showing its source tile, and the phone layout with its two toggles.
//   node tests/web/map29-places.mjs <baseUrl> <screenshotPrefix> <query> <scene2018> <scene2020> <sceneElsewhere>
// Screenshots: <prefix>-latest-1400.png, -asof-1400.png, -similar-1400.png, -changes-after-1400.png,
// -changes-before-1400.png, -heat-1400.png, -phone-390.png, -phone-tools-390.png, -phone-collapsed-390.png.
// Prints one JSON line of facts (MapPage29PlacesTests.cs checks them and the screenshots' pixels) or exits 1.
import { chromium } from 'playwright-core';

const [baseUrl, prefix, query, old, recent, elsewhere] = process.argv.slice(2);
if (!elsewhere) { console.error('usage: node map29-places.mjs <baseUrl> <prefix> <query> <scene2018> <scene2020> <sceneElsewhere>'); process.exit(2); }
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
let step = '';
const at = (name) => { step = name; };
function check(condition, message) { if (!condition) throw new Error('check failed: ' + message); }

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
const problems = [];
const facts = {};
const requests = [];
function watch(page) {
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on('request', (r) => { if (r.url().includes('/api/') || r.url().includes('/tiles/')) requests.push(r.url()); });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  page.on('request', (r) => { if (!r.url().startsWith(baseUrl) && !r.url().startsWith('data:')) problems.push('request off the host: ' + r.url()); });
  page.on('requestfailed', (r) => {
    if (r.url().includes('/tiles/') && r.failure()?.errorText === 'net::ERR_ABORTED') return;
    problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
}
const api = async (path) => { const r = await fetch(baseUrl + path); return { status: r.status, body: await r.json() }; };
// Two tiles of different acquisitions are stacked when one's centre lies inside the other's footprint box (a scene's
// own last row and column overlap their neighbours: that is its tiling, not a second acquisition).
function stacked(features) {
  const boxes = features.map((f) => { const r = f.geometry.coordinates[0]; const xs = r.map((c) => c[0]), ys = r.map((c) => c[1]); return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)]; });
  let n = 0;
  for (let i = 0; i < boxes.length; i++) for (let j = 0; j < boxes.length; j++) {
    if (i === j || features[i].properties.scene_id === features[j].properties.scene_id) continue;
    const [cx, cy] = [(boxes[i][0] + boxes[i][2]) / 2, (boxes[i][1] + boxes[i][3]) / 2];
    if (cx > boxes[j][0] && cx < boxes[j][2] && cy > boxes[j][1] && cy < boxes[j][3]) n++;
  }
  return n;
}
const sceneIds = (features) => [...new Set(features.map((f) => String(f.properties.scene_id)))].sort();
// Waits until every imagery tile <img> of the given class has loaded and faded in (Leaflet fades a loaded tile from
// opacity 0 over frames that a loaded machine draws late: a screenshot before then shows the basemap through it).
const tilesLoaded = (page, cls) => page.waitForFunction((c) => {
  const imgs = [...document.querySelectorAll(`img.leaflet-tile`)].filter((i) => i.closest('.' + c));
  return imgs.length > 0 && imgs.every((i) => i.complete && i.classList.contains('leaflet-tile-loaded') && getComputedStyle(i).opacity === '1');
}, cls, { timeout: 30000 });

try {
  const q = encodeURIComponent(query);
  const every = (await api(`/api/search?k=1000&q=${q}`)).body.features;
  const newest = (await api(`/api/search?k=1000&latest=true&q=${q}`)).body.features;
  facts.allTiles = every.length;
  facts.newestTiles = newest.length;
  facts.stackedAll = stacked(every);
  facts.stackedNewest = stacked(newest);
  check(facts.stackedAll > 0 && facts.stackedNewest === 0, `stacked tiles: ${facts.stackedAll} of all, ${facts.stackedNewest} of the newest`);
  check(JSON.stringify(sceneIds(newest)) === JSON.stringify([recent, elsewhere].sort()), 'newest per place from scenes ' + sceneIds(newest));

  const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 });
  watch(page);

  at('latest');
  // 1. The page's search keeps one acquisition per place: the 2020 tiles and the tiles of the place seen once.
  let [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/search?')), page.goto(`${baseUrl}/?q=${q}&k=1000`)]);
  check(new URL(response.url()).searchParams.get('latest') === 'true', 'the page did not ask for latest: ' + response.url());
  await page.waitForFunction((n) => document.querySelectorAll('#results li').length === n, newest.length);
  facts.pageRows = await page.locator('#results li').count();
  const pageFeatures = (await response.json()).features;
  check(JSON.stringify(sceneIds(pageFeatures)) === JSON.stringify(sceneIds(newest)), 'page rows from ' + sceneIds(pageFeatures));

  at('hit imagery');
  // 2. A selected hit lies on its own scene's imagery: a tile layer of that scene over the others.
  const firstOld = (await api(`/api/search?k=1000&q=${q}&scene=${old}`)).body.features[0];
  await page.goto(`${baseUrl}/?q=${q}&k=1000&as_of=2019-12-31`);
  await page.waitForFunction(() => document.querySelectorAll('#results li').length > 0);
  check(await page.inputValue('#fAsOf') === '2019-12-31', 'as of not read from the address');
  const asOfRows = await page.$$eval('#results li', (lis) => lis.map((li) => li.dataset.tileId));
  check(asOfRows.includes(String(firstOld.properties.tile_id)), 'as of 2019: the 2018 tile is not listed');
  facts.asOfImageryUrl = await page.evaluate(() => window.rscapretMap.imagery._url);
  check(facts.asOfImageryUrl.includes('as_of=2019-12-31'), 'imagery not as of: ' + facts.asOfImageryUrl);
  await page.click(`#results li[data-tile-id="${firstOld.properties.tile_id}"]`);
  await tilesLoaded(page, 'hit-imagery');
  facts.hitImagery = await page.evaluate(() => window.rscapretMap.hitImagery.getLayers().map((l) => l._url));
  check(facts.hitImagery.length === 1 && facts.hitImagery[0].endsWith('?scene=' + old), 'hit imagery: ' + facts.hitImagery);
  await tilesLoaded(page, 'imagery');
  await page.screenshot({ path: `${prefix}-asof-1400.png` });

  at('latest screenshot');
  await page.fill('#fAsOf', '');
  [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/search?')), page.click('#search button[type=submit]')]);
  check(!new URL(response.url()).searchParams.has('as_of'), 'as_of still sent');
  await page.waitForFunction((n) => document.querySelectorAll('#results li').length === n, newest.length);
  await tilesLoaded(page, 'imagery');
  facts.mapBox1400 = await page.locator('#map').boundingBox();
  await page.screenshot({ path: `${prefix}-latest-1400.png` });

  at('scene filter');
  // 3. The scene filter: "search here" in the scenes list; searches keep to that scene; kept in the address.
  [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/search?')), page.click(`#sceneList li[data-scene-id="${old}"] button.scene-filter`)]);
  check(new URL(response.url()).searchParams.get('scene') === old, 'scene not sent: ' + response.url());
  const inScene = (await response.json()).features;
  check(inScene.length > 0 && inScene.every((f) => String(f.properties.scene_id) === old), 'rows outside the scene');
  check(await page.isVisible('#sceneFilter') && (await page.textContent('#sceneFilterName')).includes(`scene ${old}`), 'no scene chip');
  check(new URL(page.url()).searchParams.get('scene') === old, 'scene not in the address');
  await page.waitForFunction((n) => document.querySelectorAll('#results li').length === n, inScene.length);

  at('downloads');
  // 4. Downloads: the rows listed, as GeoJSON and GeoParquet.
  check(await page.isVisible('#downloads'), 'no download links');
  const hrefs = await page.$$eval('#downloads a', (as) => as.map((a) => a.href));
  facts.downloads = [];
  for (const href of hrefs) {
    const got = await page.evaluate(async (u) => { const r = await fetch(u); const b = await r.arrayBuffer(); return { status: r.status, type: r.headers.get('content-type'), disposition: r.headers.get('content-disposition'), bytes: b.byteLength, head: String.fromCharCode(...new Uint8Array(b.slice(0, 4))) }; }, href);
    check(got.status === 200 && /attachment/.test(got.disposition ?? ''), `download ${href}: ${JSON.stringify(got)}`);
    facts.downloads.push({ href: href.replace(baseUrl, ''), ...got });
  }
  const geojson = await page.evaluate(async (u) => (await fetch(u)).json(), hrefs.find((h) => h.includes('format=geojson')));
  check(geojson.features.length === inScene.length, `GeoJSON download has ${geojson.features.length} rows, the list ${inScene.length}`);
  check(facts.downloads.some((d) => d.head === 'PAR1'), 'no Parquet file downloaded');
  await page.click('#sceneFilterClear');
  await page.waitForFunction(() => document.querySelector('#sceneFilter').hidden);

  at('similar');
  // 5. "Similar tiles": the query box emptied, a chip with the source tile's thumbnail, its footprint outlined.
  await page.fill('#q', query);
  [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/search?')), page.click('#search button[type=submit]')]);
  await page.waitForFunction(() => document.querySelectorAll('#results li').length > 1);
  const sourceId = await page.$eval('#results li', (li) => li.dataset.tileId);
  [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/search?') && r.url().includes('tile=')), page.click('#results li button.similar')]);
  check(await page.inputValue('#q') === '', 'the query box kept its text');
  await page.waitForSelector('#sourceTile:not([hidden]) img');
  await page.waitForFunction(() => document.querySelector('#sourceTile img').complete && document.querySelector('#sourceTile img').naturalWidth > 0);
  await page.waitForSelector('path.source-footprint');
  facts.sourceChip = await page.textContent('#sourceTile');
  check(facts.sourceChip.includes(`similar to tile ${sourceId}`), 'chip: ' + facts.sourceChip);
  await page.waitForFunction(() => document.querySelectorAll('#results li').length > 0);
  await page.screenshot({ path: `${prefix}-similar-1400.png` });

  at('changes');
  // 6. Changes: the imagery under the pairs flips between the after and the before scenes (a keyboard-reachable button).
  await page.fill('#before', old);
  await page.fill('#after', recent);
  [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/changes')), page.click('#changes button[type=submit]')]);
  check(response.status() === 200, 'changes answered ' + response.status());
  await page.waitForSelector('#flipImagery:not([hidden])');
  const flipUrls = () => page.evaluate(() => window.rscapretMap.flipLayer.getLayers().map((l) => l._url));
  check((await flipUrls()).every((u) => u.endsWith('?scene=' + recent)), 'after imagery: ' + await flipUrls());
  await tilesLoaded(page, 'after-imagery');
  facts.flipAfter = await page.textContent('#flipImagery');
  await page.screenshot({ path: `${prefix}-changes-after-1400.png` });
  await page.focus('#flipImagery');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('#flipImagery').dataset.side === 'before');
  check((await flipUrls()).every((u) => u.endsWith('?scene=' + old)), 'before imagery: ' + await flipUrls());
  await tilesLoaded(page, 'before-imagery');
  facts.flipBefore = await page.textContent('#flipImagery');
  await page.screenshot({ path: `${prefix}-changes-before-1400.png` });

  at('heat');
  // 7. The heat map: one acquisition per place, zoomed onto its bbox.
  const b = newest.flatMap((f) => f.geometry.coordinates[0]);
  const bbox = [Math.min(...b.map((c) => c[0])), Math.min(...b.map((c) => c[1])), Math.max(...b.map((c) => c[0])), Math.max(...b.map((c) => c[1]))].map((v) => v.toFixed(5)).join(',');
  [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/heatmap')), page.goto(`${baseUrl}/?heat=1&q=${q}&bbox=${bbox}`)]);
  check(new URL(response.url()).searchParams.get('latest') === 'true', 'heat map without latest: ' + response.url());
  const heat = (await response.json()).features;
  const heatAll = (await api(`/api/heatmap?q=${q}&bbox=${bbox}`)).body.features;
  facts.heatTiles = heat.length;
  facts.heatAllTiles = heatAll.length;
  facts.heatStacked = stacked(heat);
  check(facts.heatStacked === 0 && stacked(heatAll) > 0 && heat.length < heatAll.length, `heat map stacked ${facts.heatStacked}; ${heat.length} of ${heatAll.length} tiles`);
  await page.waitForFunction((n) => document.querySelectorAll('path.heat-footprint').length === n, heat.length);
  await tilesLoaded(page, 'imagery');
  facts.heatZoom = await page.evaluate(() => window.rscapretMap.map.getZoom());
  await page.screenshot({ path: `${prefix}-heat-1400.png` });
  await page.close();

  at('phone');
  // 8. A phone: the map at least half the screen and in view, the toolbar inside the width, the two toggles.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true });
  watch(phone);
  await phone.goto(`${baseUrl}/`);
  await phone.waitForFunction(() => window.rscapretMap && document.querySelectorAll('#sceneList li.scene').length > 0);
  check(await phone.evaluate(() => window.rscapretMap.basemapReady), 'phone: basemap not loaded');
  const layout = () => phone.evaluate(() => {
    const r = (el) => { const b = el.getBoundingClientRect(); return { x: Math.round(b.x), y: Math.round(b.y), width: Math.round(b.width), height: Math.round(b.height) }; };
    const header = document.querySelector('header');
    const controls = [...header.querySelectorAll('input, button, label, a')].filter((el) => el.offsetParent !== null).map(r);
    return { map: r(document.querySelector('#map')), header: r(header), side: r(document.querySelector('#side')),
      headerOverflow: header.scrollWidth - header.clientWidth, controlsRight: Math.max(...controls.map((c) => c.x + c.width)),
      controlsLeft: Math.min(...controls.map((c) => c.x)), pageScroll: document.documentElement.scrollHeight - innerHeight };
  });
  facts.phone = await layout();
  check(facts.phone.map.height >= 422 && facts.phone.map.y + facts.phone.map.height <= 844 && facts.phone.map.width >= 380, 'phone map ' + JSON.stringify(facts.phone.map));
  check(facts.phone.headerOverflow <= 0 && facts.phone.controlsRight <= 390 && facts.phone.controlsLeft >= 0, 'toolbar cut off ' + JSON.stringify(facts.phone));
  await phone.screenshot({ path: `${prefix}-phone-390.png` });
  // Tools: the filters and the other forms unfold; they fit the width too.
  await phone.click('#toolsToggle');
  await phone.waitForSelector('#fAsOf', { state: 'visible' });
  facts.phoneTools = await layout();
  check(facts.phoneTools.headerOverflow <= 0 && facts.phoneTools.controlsRight <= 390, 'tools cut off ' + JSON.stringify(facts.phoneTools));
  check(facts.phoneTools.map.height >= 422, 'phone map with tools open ' + JSON.stringify(facts.phoneTools.map));
  await phone.screenshot({ path: `${prefix}-phone-tools-390.png` });
  await phone.click('#toolsToggle');
  // The list folds away and the map takes its place.
  await phone.click('#panelToggle');
  await phone.waitForSelector('#sidePanels', { state: 'hidden' });
  facts.phoneCollapsed = await layout();
  check(facts.phoneCollapsed.map.height > facts.phone.map.height && facts.phoneCollapsed.pageScroll <= 0, 'collapsed ' + JSON.stringify(facts.phoneCollapsed));
  check(await phone.getAttribute('#panelToggle', 'aria-expanded') === 'false', 'panel toggle state');
  await phone.screenshot({ path: `${prefix}-phone-collapsed-390.png` });
  check(problems.length === 0, problems.join('\n'));
  console.log(JSON.stringify(facts));
} catch (e) {
  console.error(`[${step}] ` + e.message);
  if (problems.length) console.error(problems.join('\n'));
  console.error('requests:\n' + requests.slice(-30).join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
