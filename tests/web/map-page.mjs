// Drives the search page of `rscapret serve` in headless Chromium (Debian's, not a Playwright download).
//   node tests/web/map-page.mjs <baseUrl> <screenshot.png> [query] [beforeSceneId afterSceneId]
// With two scene ids of the same ground, the changes view is checked too (screenshot: <screenshot>-changes.png), and
// the land-use view of the first scene (<screenshot>-classes.png).
// Exits 0 when every check passes and prints one JSON line (the facts MapPageTests.cs checks further:
// result count, map rectangle in the screenshot, zooms); otherwise prints what failed and exits 1.
import { chromium } from 'playwright-core';

const [baseUrl, screenshotPath, query = 'a farm', beforeId, afterId] = process.argv.slice(2);
if (!baseUrl || !screenshotPath) {
  console.error('usage: node map-page.mjs <baseUrl> <screenshot.png> [query]');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

function check(condition, message) {
  if (!condition) throw new Error('check failed: ' + message);
}

const browser = await chromium.launch({ executablePath, headless: true });
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 }, deviceScaleFactor: 1 });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  // The API's 400 answers are expected (the error checks below); Chromium logs them as failed loads.
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 40[04]/.test(m.text())) problems.push('console error: ' + m.text()); });
  // Leaflet cancels the map tiles it no longer needs when the view moves on (net::ERR_ABORTED): that is not a failure.
  page.on('requestfailed', (r) => {
    if (r.url().includes('/tiles/') && r.failure()?.errorText === 'net::ERR_ABORTED') return;
    problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => { if (r.status() >= 400 && !r.url().includes('/api/search') && !r.url().includes('/api/scenes/999999/')) problems.push(`HTTP ${r.status()} for ${r.url()}`); });

  await page.goto(baseUrl + '/');
  check(await page.title() === 'RsCapRet search', 'page title');
  check(await page.locator('a[href="hangfire"]').count() === 1, 'link to the Hangfire dashboard');
  await page.waitForFunction(() => window.L && window.rscapretMap);
  const zoomBefore = await page.evaluate(() => window.rscapretMap.map.getZoom());

  // Search: type, submit, and keep the API's own answer to compare the page with.
  await page.fill('#q', query);
  await page.fill('#k', '4');
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('/api/search')),
    page.click('#search button[type=submit]'),
  ]);
  check(response.status() === 200, `search answered HTTP ${response.status()}`);
  const api = await response.json();
  const featureCount = api.features.length;
  check(featureCount > 0, 'the API returned no features for the query');
  await page.waitForFunction((n) => document.querySelectorAll('#results li').length === n, featureCount);
  check(await page.locator('#error').isHidden(), 'no error shown after a good search');

  // Every result has a caption and a thumbnail that loaded.
  await page.waitForFunction(() => [...document.querySelectorAll('#results img')].every((i) => i.complete), null, { timeout: 30000 });
  const items = await page.$$eval('#results li', (lis) => lis.map((li) => ({
    caption: li.querySelector('.caption')?.textContent ?? '',
    meta: li.querySelector('.meta')?.textContent ?? '',
    thumbWidth: li.querySelector('img')?.naturalWidth ?? 0,
  })));
  items.forEach((it, i) => {
    check(it.caption.trim().length > 0 && it.caption === (api.features[i].properties.caption ?? '(no caption)'), `result ${i + 1} caption`);
    check(it.thumbWidth > 0, `result ${i + 1} thumbnail did not load`);
    check(it.meta.includes(api.features[i].properties.scene.split('/').pop()), `result ${i + 1} names its scene`);
    check(it.meta.includes(api.features[i].properties.score.toFixed(3)), `result ${i + 1} shows its score`);
  });

  // Footprints drawn in the map's overlay pane, one path per feature with a geometry.
  const withGeometry = api.features.filter((f) => f.geometry).length;
  const paths = await page.locator('.leaflet-overlay-pane path.footprint').count();
  check(paths === withGeometry, `${paths} footprint paths in the map pane, expected ${withGeometry}`);
  const zoomFitted = await page.evaluate(() => window.rscapretMap.map.getZoom());
  check(zoomFitted > zoomBefore + 5, `map fitted to the results (zoom ${zoomBefore} -> ${zoomFitted})`);

  // Clicking the first result zooms to its footprint and highlights it.
  const moved = page.evaluate(() => new Promise((resolve) => window.rscapretMap.map.once('moveend', resolve)));
  await page.click('#results li:first-child');
  await moved; // the zoom animation ended and the footprints were redrawn
  const zoomSelected = await page.evaluate(() => window.rscapretMap.map.getZoom());
  check(zoomSelected > zoomFitted, `zoom did not increase on selecting a result (${zoomFitted} -> ${zoomSelected})`);
  check(await page.locator('#results li.selected').count() === 1, 'the clicked result is marked selected');
  const firstInView = await page.evaluate((f) => {
    const ring = f.geometry.coordinates[0];
    const lon = ring.reduce((s, c) => s + c[0], 0) / ring.length, lat = ring.reduce((s, c) => s + c[1], 0) / ring.length;
    return window.rscapretMap.map.getBounds().contains([lat, lon]);
  }, api.features[0]);
  check(firstInView, 'the first footprint is in view after clicking its result');
  const mapBox = await page.locator('#map').boundingBox();
  // The imagery layer under the footprints: every tile image of the view loaded (the host renders them from the
  // ingested scene), then the screenshot; the C# side checks that imagery, not the plain background, fills the
  // selected footprint.
  await page.waitForFunction(() => {
    const tiles = [...document.querySelectorAll('.imagery img.leaflet-tile')];
    return tiles.length > 0 && tiles.every((t) => t.complete && t.classList.contains('leaflet-tile-loaded'));
  }, null, { timeout: 60000 });
  const imageryTiles = await page.locator('.imagery img.leaflet-tile-loaded').count();
  await page.evaluate(() => window.rscapretMap.map.closePopup());
  const footBox = await page.evaluate(([f, box]) => {
    const m = window.rscapretMap.map;
    const pts = f.geometry.coordinates[0].map((c) => m.latLngToContainerPoint([c[1], c[0]]));
    const xs = pts.map((p) => p.x), ys = pts.map((p) => p.y);
    return { x: Math.round(box.x + Math.min(...xs)), y: Math.round(box.y + Math.min(...ys)),
             width: Math.round(Math.max(...xs) - Math.min(...xs)), height: Math.round(Math.max(...ys) - Math.min(...ys)) };
  }, [api.features[0], mapBox]);
  await page.screenshot({ path: screenshotPath });

  // "thumbnails" draws each result's thumbnail over its footprint; unticking removes them.
  await page.check('#thumbs');
  await page.waitForFunction((n) => document.querySelectorAll('img.thumb-overlay').length === n, withGeometry);
  await page.waitForFunction(() => [...document.querySelectorAll('img.thumb-overlay')].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 30000 });
  const thumbOverlays = await page.locator('img.thumb-overlay').count();
  await page.uncheck('#thumbs');
  check(await page.locator('img.thumb-overlay').count() === 0, 'unticking thumbnails removes them');

  // Clicking a footprint opens its caption.
  const firstPath = page.locator('.leaflet-overlay-pane path.footprint').first();
  const pathBox = await firstPath.boundingBox();
  await page.mouse.click(pathBox.x + pathBox.width / 2, pathBox.y + pathBox.height / 2);
  await page.waitForSelector('.leaflet-popup .popup-caption');
  const popupCaption = await page.textContent('.leaflet-popup .popup-caption');
  check(api.features.some((f) => (f.properties.caption ?? '(no caption)') === popupCaption), `the popup shows a result's caption: ${popupCaption}`);

  // "similar tiles" on the first result searches by that tile: the answer leaves the tile itself out.
  const firstId = api.features[0].properties.tile_id;
  const [similarResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('/api/search') && r.url().includes('tile=')),
    page.click('#results li:first-child button.similar'),
  ]);
  check(similarResponse.status() === 200, `similar tiles answered HTTP ${similarResponse.status()}`);
  const similarIds = (await similarResponse.json()).features.map((f) => f.properties.tile_id);
  check(similarIds.length > 0 && !similarIds.includes(firstId), `similar tiles of ${firstId}: ${similarIds}`);
  await page.waitForFunction((n) => document.querySelectorAll('#results li').length === n && document.querySelector('#status').textContent !== 'Searching…', similarIds.length);
  check(new URL(page.url()).searchParams.get('tile') === String(firstId), 'the tile search is kept in the address: ' + page.url());

  // "By image": the first result's own thumbnail as an image of the user's, posted to /api/search/image; its tile is
  // among the answer, listed like any search, with the image as the source chip and no download of a POST.
  const thumbBytes = await (await page.request.get(baseUrl + `/api/tiles/${firstId}/thumbnail.png`)).body();
  const [uploadResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('/api/search/image') && r.request().method() === 'POST'),
    page.setInputFiles('#byImage', { name: 'mine.png', mimeType: 'image/png', buffer: thumbBytes }),
  ]);
  check(uploadResponse.status() === 200, `image search answered HTTP ${uploadResponse.status()}`);
  check(new URL(uploadResponse.url()).searchParams.get('latest') === 'true', 'the image search keeps one acquisition per place: ' + uploadResponse.url());
  const uploadIds = (await uploadResponse.json()).features.map((f) => f.properties.tile_id);
  check(uploadIds.includes(firstId), `the image search of tile ${firstId}'s thumbnail finds it: ${uploadIds}`);
  await page.waitForFunction((n) => document.querySelectorAll('#results li').length === n && document.querySelector('#status').textContent !== 'Searching…', uploadIds.length);
  check((await page.textContent('#sourceTile')).includes('similar to your image mine.png'), 'the source chip names the uploaded image');
  check(await page.locator('#sourceTile img').evaluate((i) => i.complete && i.naturalWidth > 0), 'the source chip shows the uploaded image');
  check(await page.locator('#downloads').isHidden(), 'no download link for an image search');
  check(!new URL(page.url()).searchParams.has('tile') && !new URL(page.url()).searchParams.has('q'), 'the address no longer names the earlier search: ' + page.url());
  // Not an image: the API's 400 is shown as text, nothing listed.
  await Promise.all([
    page.waitForResponse((r) => r.url().includes('/api/search/image')),
    page.setInputFiles('#byImage', { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('not an image') }),
  ]);
  await page.waitForSelector('#error:not([hidden])');
  check((await page.textContent('#error')).includes('cannot be read'), 'a file that is not an image: ' + await page.textContent('#error'));
  check(await page.locator('#results li').count() === 0, 'nothing listed after a refused image');
  // Dropped on the map, an image searches by it as "By image" does (the browser does not open it in place of the
  // page); a file that is no image is refused in the page, never sent.
  const dropFile = (bytes, name, type) => page.evaluateHandle(([b64, n, t]) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], n, { type: t }));
    return transfer;
  }, [bytes.toString('base64'), name, type]);
  const droppedPng = await dropFile(thumbBytes, 'dropped.png', 'image/png');
  const dragTaken = await page.evaluate((transfer) => {
    const over = new DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true });
    document.getElementById('map').dispatchEvent(over);
    return over.defaultPrevented;
  }, droppedPng);
  check(dragTaken, 'a file dragged over the map is left to the browser, which would open it in place of the page');
  const [dropResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('/api/search/image')),
    page.dispatchEvent('#map', 'drop', { dataTransfer: droppedPng }),
  ]);
  check(dropResponse.status() === 200, `the dropped image's search answered HTTP ${dropResponse.status()}`);
  const dropIds = (await dropResponse.json()).features.map((f) => f.properties.tile_id);
  check(dropIds.includes(firstId), `the dropped thumbnail of tile ${firstId} finds it: ${dropIds}`);
  await page.waitForFunction((n) => document.querySelectorAll('#results li').length === n && document.querySelector('#status').textContent !== 'Searching…', dropIds.length);
  check((await page.textContent('#sourceTile')).includes('similar to your image dropped.png'), 'the source chip names the dropped image');
  let searchesAfter = 0;
  const countSearches = (r) => { if (r.url().includes('/api/search')) searchesAfter++; };
  page.on('request', countSearches);
  await page.dispatchEvent('#map', 'drop', { dataTransfer: await dropFile(Buffer.from('%PDF-1.4'), 'report.pdf', 'application/pdf') });
  await page.waitForFunction(() => !document.querySelector('#error').hidden && document.querySelector('#error').textContent.includes('report.pdf'));
  check((await page.textContent('#error')).includes('report.pdf is not a PNG, JPEG, TIFF or WebP image'), 'a dropped PDF: ' + await page.textContent('#error'));
  page.off('request', countSearches);
  check(searchesAfter === 0, `a dropped PDF was sent to a search (${searchesAfter} requests)`);

  // "similar tiles" emptied the box (issue 29); "limit to map view" sends the view's bbox.
  check(await page.inputValue('#q') === '', 'similar tiles left the text in the box');
  await page.fill('#q', query);
  await page.check('#inView');
  const [viewResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().includes('/api/search')),
    page.click('#search button[type=submit]'),
  ]);
  check(/[?&]bbox=-?\d/.test(viewResponse.url()), 'limit to map view sends bbox: ' + viewResponse.url());
  check(viewResponse.status() === 200, `search in view answered HTTP ${viewResponse.status()}`);
  const inView = (await viewResponse.json()).features.length;
  await page.waitForFunction((n) => document.querySelectorAll('#results li').length === n && document.querySelector('#status').textContent !== 'Searching…', inView);

  // Errors from the API are shown in the page: a bbox out of range (from the address), then an empty query.
  await page.goto(baseUrl + '/?q=farm&bbox=200,0,210,10');
  await page.waitForSelector('#error:not([hidden])');
  const bboxError = await page.textContent('#error');
  check(bboxError.includes('400') && bboxError.includes('longitude 200 is outside -180..180'), 'bbox error shown: ' + bboxError);
  check(await page.locator('#results li').count() === 0, 'no results listed with an error');
  await page.fill('#q', '   ');
  await page.uncheck('#inView');
  await Promise.all([page.waitForResponse((r) => r.url().includes('/api/search')), page.click('#search button[type=submit]')]);
  await page.waitForFunction(() => document.querySelector('#error').textContent.includes('empty'));

  // The changes view from the address: one list item (before and after thumbnails) and one coloured overlap per pair.
  let pairs = 0, changePaths = 0;
  if (beforeId && afterId) {
    const [changesResponse] = await Promise.all([
      page.waitForResponse((r) => r.url().includes('/api/changes')),
      page.goto(`${baseUrl}/?before=${beforeId}&after=${afterId}&k=10`),
    ]);
    check(changesResponse.status() === 200, `changes answered HTTP ${changesResponse.status()}`);
    pairs = (await changesResponse.json()).features.length;
    check(pairs > 0, 'the changes API returned no pairs');
    await page.waitForFunction((n) => document.querySelectorAll('#results li.change').length === n, pairs);
    await page.waitForFunction(() => [...document.querySelectorAll('#results li.change img')].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 30000 });
    check(await page.locator('#results li.change img').count() === 2 * pairs, 'a before and an after thumbnail per pair');
    changePaths = await page.locator('.leaflet-overlay-pane path.change-footprint').count();
    check(changePaths === pairs, `${changePaths} change footprints for ${pairs} pairs`);
    check(await page.locator('#legend').isVisible(), 'the change legend is shown');
    check(await page.locator('#error').isHidden(), 'no error shown for the changes view');
    await page.screenshot({ path: screenshotPath.replace(/\.png$/, '-changes.png') });
  }

  // The heat map from the address (a scene), then from the button (the map view): one path per scored tile, a legend.
  let heatTiles = 0, heatPaths = 0, heatButtonTiles = 0;
  if (beforeId) {
    const [heatResponse] = await Promise.all([
      page.waitForResponse((r) => r.url().includes('/api/heatmap')),
      page.goto(`${baseUrl}/?heat=1&q=${encodeURIComponent(query)}&scene=${beforeId}`),
    ]);
    check(heatResponse.status() === 200, `heat map answered HTTP ${heatResponse.status()}`);
    const heat = await heatResponse.json();
    heatTiles = heat.features.length;
    check(heatTiles > 0 && heat.max_score >= heat.min_score, 'the heat map API scored no tiles');
    await page.waitForFunction((n) => document.querySelectorAll('.leaflet-overlay-pane path.heat-footprint').length === n, heatTiles);
    heatPaths = await page.locator('.leaflet-overlay-pane path.heat-footprint').count();
    check(await page.locator('#legend .ramp.heat').isVisible(), 'the heat map legend is shown');
    check((await page.textContent('#legend')).includes(heat.max_score.toFixed(3)), 'the legend gives the highest score');
    await page.screenshot({ path: screenshotPath.replace(/\.png$/, '-heatmap.png') });
    // The button scores the tiles in the current view (the scene's, since the map shows it).
    await page.evaluate(() => window.rscapretMap.map.fitBounds(window.rscapretMap.map.getBounds().pad(0.5)));
    const [viewHeat] = await Promise.all([
      page.waitForResponse((r) => r.url().includes('/api/heatmap') && r.url().includes('bbox=')),
      page.click('#heat'),
    ]);
    check(viewHeat.status() === 200, `heat map of the view answered HTTP ${viewHeat.status()}`);
    heatButtonTiles = (await viewHeat.json()).features.length;
    check(heatButtonTiles >= heatTiles, `the view's heat map scored ${heatButtonTiles} tiles, the scene has ${heatTiles}`);
    check(await page.locator('#error').isHidden(), 'no error shown for the heat map');
  }

  // The land-use view from the address: one coloured path per labelled tile, and a legend entry per label taken.
  let classTiles = 0, classPaths = 0, legendEntries = 0, labelsTaken = 0;
  if (beforeId) {
    const [classesResponse] = await Promise.all([
      page.waitForResponse((r) => r.url().includes('/classes')),
      page.goto(`${baseUrl}/?classes=${beforeId}&labels=${encodeURIComponent('farmland,river,forest')}`),
    ]);
    check(classesResponse.status() === 200, `land use answered HTTP ${classesResponse.status()}`);
    const body = await classesResponse.json();
    classTiles = body.features.length;
    labelsTaken = body.legend.filter((l) => l.tiles > 0).length;
    check(classTiles > 0, 'the land-use API labelled no tiles');
    await page.waitForFunction((n) => document.querySelectorAll('.leaflet-overlay-pane path.class-footprint').length === n, classTiles);
    classPaths = await page.locator('.leaflet-overlay-pane path.class-footprint').count();
    legendEntries = await page.locator('#legend .class-entry').count();
    check(legendEntries === labelsTaken, `${legendEntries} legend entries for ${labelsTaken} labels taken`);
    check(await page.locator('#legend').isVisible(), 'the land-use legend is shown');
    const fills = await page.$$eval('.leaflet-overlay-pane path.class-footprint', (ps) => [...new Set(ps.map((p) => p.getAttribute('fill')))]);
    const colours = new Set(body.features.map((f) => f.properties.colour));
    check(fills.every((c) => colours.has(c)), `path colours ${fills} are the API's ${[...colours]}`);
    check(await page.locator('#error').isHidden(), 'no error shown for the land-use view');
    await page.screenshot({ path: screenshotPath.replace(/\.png$/, '-classes.png') });
    // A scene that is not there: the API's 404 is shown in the page.
    await page.fill('#classScene', '999999');
    await Promise.all([page.waitForResponse((r) => r.url().includes('/classes')), page.click('#classes button[type=submit]')]);
    await page.waitForFunction(() => document.querySelector('#error').textContent.includes('404'));
  }

  check(problems.length === 0, 'browser reported problems:\n  ' + problems.join('\n  '));
  console.log(JSON.stringify({
    imageryTiles, footBox, thumbOverlays,
    classTiles, classPaths, legendEntries, labelsTaken, heatTiles, heatPaths, heatButtonTiles,
    pairs, changePaths,
    features: featureCount, results: items.length, paths, zoomBefore, zoomFitted, zoomSelected, inView,
    map: { x: Math.round(mapBox.x), y: Math.round(mapBox.y), width: Math.round(mapBox.width), height: Math.round(mapBox.height) },
    bboxError,
  }));
} catch (e) {
  console.error(e.stack || String(e));
  if (problems.length) console.error('browser problems:\n  ' + problems.join('\n  '));
  process.exitCode = 1;
} finally {
  await browser.close();
}
