// Map page load to the first imagery tile (issue 29), driven by bench/page-load.sh: headless Chromium (Debian's) at
// 1400 x 900 opens BASE/?heat=1&q=QUERY&scene=ID (the heat map of one scene, which zooms onto it) in a fresh browser
// context per load (empty HTTP cache), and times from navigation start (performance.now() = 0) to
//   - the basemap drawn: the first Natural Earth land path (path.basemap-land) in the page;
//   - the heat map drawn (its scores come from GET /api/heatmap; only then does the page zoom and ask for tiles);
//   - the first imagery tile: the first `tiles/{z}/{x}/{y}.png` image Leaflet has loaded (class leaflet-tile-loaded)
//     at the zoom the page settles on that covers part of the scene (tiles elsewhere are transparent);
//   - every imagery tile of that view loaded.
// Two sides take turns each round: "cold" (the host's tile disk cache emptied right before each load, so every tile
// is rendered from the scene file) and "warm" (the cache holds the view's tiles). Per round each side loads the page
// --loads times and its value is their median; the report gives per side the median over rounds with min and max,
// the per-round cold/warm ratios, and last one JSON line.
//   node bench/page-load.mjs BASE_URL TILE_CACHE_DIR SCREENSHOT_PREFIX [--rounds 5] [--warmup 1] [--loads 3] [--query buildings]
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const argv = process.argv.slice(2);
const [baseUrl, cacheDir, shotPrefix] = argv;
if (!baseUrl || !cacheDir || !shotPrefix) {
  console.error('usage: node bench/page-load.mjs BASE_URL TILE_CACHE_DIR SCREENSHOT_PREFIX [--rounds 5] [--warmup 1] [--loads 3] [--query buildings]');
  process.exit(2);
}
const option = (name, fallback) => { const i = argv.indexOf(name); return i >= 0 && argv[i + 1] ? argv[i + 1] : fallback; };
const rounds = Number(option('--rounds', '5')), warmup = Number(option('--warmup', '1')), loads = Number(option('--loads', '3'));
const query = option('--query', 'buildings');
for (const [name, v] of [['--rounds', rounds], ['--warmup', warmup], ['--loads', loads]])
  if (!Number.isInteger(v) || v < (name === '--warmup' ? 0 : 1)) { console.error(`${name}: expected a whole number, got ${v}`); process.exit(2); }

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const round3 = (x) => Math.round(x * 1000) / 1000;

const scenes = (await (await fetch(baseUrl + '/api/scenes?limit=10')).json()).scenes.filter((s) => s.status === 'done' && Array.isArray(s.bbox));
if (scenes.length !== 1) { console.error(`expected one ingested scene with a footprint, found ${scenes.length}`); process.exit(1); }
const scene = scenes[0];
const [west, south, east, north] = scene.bbox;
// The view is zoomed onto the scene once the scene spans at least one 256-px tile's width.
const minZoom = Math.ceil(Math.log2(360 / (east - west)));
const url = `${baseUrl}/?heat=1&q=${encodeURIComponent(query)}&scene=${scene.id}`;

// Runs in the page before its scripts: notes when the basemap's land and each imagery tile appear loaded.
function observe() {
  const marks = { basemap: null, heat: null, tiles: [] };
  window.__pageLoad = marks;
  const seen = new Set();
  new MutationObserver(() => {
    const t = performance.now();
    if (marks.basemap === null && document.querySelector('path.basemap-land')) marks.basemap = t;
    if (marks.heat === null && document.querySelector('.heat-footprint, .heat-cell')) marks.heat = t;
    for (const img of document.querySelectorAll('.imagery img.leaflet-tile-loaded')) {
      if (seen.has(img.src)) continue;
      seen.add(img.src);
      marks.tiles.push({ src: img.src, t });
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['class'] });
}

// Tile z/x/y of an imagery image's address, and whether it covers part of the scene.
function tileOf(src) {
  const m = /\/tiles\/(\d+)\/(\d+)\/(\d+)\.png/.exec(src);
  if (!m) return null;
  const [z, x, y] = m.slice(1).map(Number);
  const n = 2 ** z;
  const lon = (i) => (i / n) * 360 - 180;
  const lat = (j) => (Math.atan(Math.sinh(Math.PI * (1 - (2 * j) / n))) * 180) / Math.PI;
  return { z, covers: lon(x) < east && lon(x + 1) > west && lat(y + 1) < north && lat(y) > south };
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });

function emptyTileCache() {
  if (!fs.existsSync(cacheDir)) return;
  for (const entry of fs.readdirSync(cacheDir)) fs.rmSync(path.join(cacheDir, entry), { recursive: true, force: true });
}

async function loadOnce(side, screenshot) {
  if (side === 'cold') emptyTileCache();
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 });
  const problems = [];
  try {
    await context.addInitScript(observe);
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
    await page.goto(url, { waitUntil: 'commit' });
    // Settled: the heat map drawn, the view zoomed onto the scene, a tile there loaded and none still loading.
    await page.waitForFunction((zoom) => {
      const zs = [...document.querySelectorAll('.imagery img')].map((img) => Number((/\/tiles\/(\d+)\//.exec(img.src) ?? [])[1]));
      return document.querySelector('.heat-footprint, .heat-cell') && window.__pageLoad.basemap !== null
        && zs.length > 0 && Math.max(...zs) >= zoom && document.querySelectorAll('.imagery img:not(.leaflet-tile-loaded)').length === 0;
    }, minZoom, { timeout: 120_000, polling: 50 });
    const marks = await page.evaluate(() => window.__pageLoad);
    if (screenshot) await page.screenshot({ path: screenshot });
    if (problems.length > 0) throw new Error(problems.join('; '));
    const tiles = marks.tiles.map((m) => ({ ...m, ...tileOf(m.src) })).filter((m) => m.z !== undefined);
    const zoom = Math.max(...tiles.map((m) => m.z));
    const view = tiles.filter((m) => m.z === zoom);
    const first = view.filter((m) => m.covers).map((m) => m.t);
    if (first.length === 0) throw new Error(`no loaded tile at zoom ${zoom} covers the scene`);
    return { basemap: marks.basemap, heat: marks.heat, firstTile: Math.min(...first), allTiles: Math.max(...view.map((m) => m.t)), zoom, tiles: view.length };
  } finally {
    await context.close();
  }
}

const sides = ['cold', 'warm'];
const values = { cold: [], warm: [] };   // per round: the median of its loads, per measure
const measures = ['firstTile', 'basemap', 'heat', 'allTiles'];
const names = { firstTile: 'first imagery tile of the scene', basemap: 'basemap drawn', heat: 'heat map drawn (the view then zooms onto the scene)', allTiles: 'every imagery tile of the view' };
let zoom = null, tileCount = null;
const loadAll = [];
console.log(`page: ${url} (1400x900; scene ${scene.id}, bbox ${scene.bbox.map((v) => v.toFixed(4)).join(',')})`);
console.log(`method: ${warmup} warm-up round(s), then ${rounds} rounds; each round: cold, warm, ${loads} page load(s) each in a fresh browser context; ms from navigation start`);
for (let r = -warmup; r < rounds; r++) {
  for (const side of sides) {
    const runs = [];
    for (let i = 0; i < loads; i++) {
      const shot = r === rounds - 1 && i === 0 ? `${shotPrefix}-${side}.png` : null;
      runs.push(await loadOnce(side, shot));
    }
    const row = Object.fromEntries(measures.map((m) => [m, median(runs.map((x) => x[m]))]));
    const label = r < 0 ? `warm-up ${r + warmup + 1}/${warmup}` : `round ${r + 1}/${rounds}`;
    console.log(`  ${label}  ${side}: first tile ${row.firstTile.toFixed(0)} ms, basemap ${row.basemap.toFixed(0)} ms, heat map ${row.heat.toFixed(0)} ms, all tiles ${row.allTiles.toFixed(0)} ms` +
      ` (zoom ${runs[0].zoom}, ${runs[0].tiles} tiles)${r < 0 ? ' (discarded)' : ''}`);
    if (r < 0) continue;
    values[side].push(row);
    loadAll.push(...runs.map((x) => ({ side, ...x })));
    zoom = runs[0].zoom; tileCount = runs[0].tiles;
  }
}
await browser.close();

const summary = (xs) => ({ median: round3(median(xs)), min: round3(Math.min(...xs)), max: round3(Math.max(...xs)), rounds: xs.map(round3) });
const report = { benchmark: 'page-load', warmup_rounds: warmup, rounds, options: { loads, query, viewport: '1400x900', scene: scene.id, zoom, tiles: tileCount }, sides: [], ratios: [] };
for (const side of sides)
  for (const m of measures) {
    const s = summary(values[side].map((v) => v[m]));
    report.sides.push({ name: `${side}: ${names[m]}`, unit: 'ms', ...s });
    console.log(`${side}: ${names[m]}: ${s.median.toFixed(0)} ms (min ${s.min.toFixed(0)}, max ${s.max.toFixed(0)})`);
  }
for (const m of ['firstTile', 'allTiles']) {
  const s = summary(values.cold.map((v, i) => v[m] / values.warm[i][m]));
  report.ratios.push({ name: `cold / warm: ${names[m]}`, ...s });
  console.log(`cold / warm, ${names[m]}: ${s.median.toFixed(2)} (per round ${s.rounds.join(', ')})`);
}
const p50 = (side, m) => round3(median(loadAll.filter((x) => x.side === side).map((x) => x[m])));
console.log(JSON.stringify(report));
console.log(JSON.stringify({
  loads_per_side: loadAll.length / 2, zoom, tiles: tileCount,
  cold_first_tile_p50_ms: p50('cold', 'firstTile'), warm_first_tile_p50_ms: p50('warm', 'firstTile'),
  cold_basemap_p50_ms: p50('cold', 'basemap'), warm_basemap_p50_ms: p50('warm', 'basemap'),
  cold_heat_p50_ms: p50('cold', 'heat'), warm_heat_p50_ms: p50('warm', 'heat'),
  cold_all_tiles_p50_ms: p50('cold', 'allTiles'), warm_all_tiles_p50_ms: p50('warm', 'allTiles'),
}));
