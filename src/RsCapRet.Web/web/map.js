// The search page: a text query to /api/search, results listed beside a Leaflet map of their footprints.
// The base layer is the host's own imagery (tiles/{z}/{x}/{y}.png, rendered from the ingested scenes; no internet
// needed), over an offline Natural Earth basemap (land, borders; the sea is the map's background) and a graticule.
'use strict';
(function () {
  const FOOTPRINT = { color: '#ff00ff', weight: 3, opacity: 1, fillColor: '#ff00ff', fillOpacity: 0.12 };
  const SELECTED = { color: '#ff00ff', weight: 6, opacity: 1, fillColor: '#ff00ff', fillOpacity: 0.35 };

  const $ = (id) => document.getElementById(id);
  const form = $('search'), q = $('q'), k = $('k'), inView = $('inView'), thumbs = $('thumbs');
  const statusEl = $('status'), errorEl = $('error'), list = $('results'), legend = $('legend');
  const fAfter = $('fAfter'), fBefore = $('fBefore'), fNear = $('fNear'), moreResults = $('moreResults');
  const fAsOf = $('fAsOf'), sourceTileEl = $('sourceTile'), flipButton = $('flipImagery'), downloads = $('downloads');

  const map = L.map('map', { worldCopyJump: false, minZoom: 1, maxZoom: 22, zoomSnap: 0.25 }).setView([20, 0], 2);
  // The basemap: Natural Earth 1:110m land and country borders, vendored with the page (static/vendor/naturalearth),
  // in its own pane under the imagery tiles (tilePane is z-index 200); the sea is #map's background colour.
  map.createPane('basemap').style.zIndex = 150;
  map.getPane('basemap').style.pointerEvents = 'none';
  const basemap = L.geoJSON(null, {
    pane: 'basemap', interactive: false,
    style: (f) => (f.properties.kind === 'land'
      ? { stroke: true, color: '#8fa8b8', weight: 0.8, fillColor: '#f2efe6', fillOpacity: 1, className: 'basemap-land' }
      : { color: '#a89f91', weight: 0.8, dashArray: '3 2', fill: false, className: 'basemap-border' }),
  }).addTo(map);
  map.attributionControl.addAttribution('basemap: Natural Earth (public domain)');
  const basemapReady = fetch('static/vendor/naturalearth/ne-110m.json')
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status))))
    .then((data) => { basemap.addData(data); return true; })
    .catch((e) => { console.warn('basemap not loaded: ' + e.message); return false; });
  const graticule = L.layerGroup().addTo(map);
  // Imagery of the ingested scenes, under every overlay; transparent where no scene covers.
  const imagery = L.tileLayer('tiles/{z}/{x}/{y}.png', { maxZoom: 22, tileSize: 256, className: 'imagery',
    attribution: 'imagery: the ingested scenes' }).addTo(map);
  const thumbLayer = L.layerGroup().addTo(map);   // result thumbnails over their footprints (the "thumbnails" toggle)
  // "Where in the tile" (issue 30): searches ask localize=1 and each result's hottest cells are drawn in its footprint;
  // the heat map asks cells=1 (one colour per stored cell).
  const whereInTile = $('whereInTile');
  const hybrid = $('hybrid');
  const hotLayer = L.layerGroup().addTo(map);
  const HOT = { color: '#ffd400', weight: 2, opacity: 1, fillColor: '#ffd400', fillOpacity: 0.45, interactive: false, className: 'hot-cells' };
  function drawHotCells(features) {
    for (const f of features) {
      const hot = f.properties.hot_cells;
      if (hot && hot.geometry) L.geoJSON(hot.geometry, { style: () => HOT, interactive: false }).addTo(hotLayer);
    }
  }
  // Over several acquisitions of the same ground the imagery shows the newest, or the newest on or before "as of":
  // the one the results and the heat map keep (latest=true on their requests), so hits lie on their own imagery.
  function imageryUrl() {
    const asOf = fAsOf.value.trim();
    return 'tiles/{z}/{x}/{y}.png' + (/^\d{4}-\d{2}-\d{2}$/.test(asOf) ? '?as_of=' + asOf : '');
  }
  // Leaflet's setUrl redraws at the map's fractional zoom (tiles/18.5/...): the layer is added again instead, which
  // picks a whole zoom.
  function updateImagery() {
    const url = imageryUrl();
    if (imagery._url === url) return;
    imagery.setUrl(url, true);
    if (map.hasLayer(imagery)) { imagery.remove(); imagery.addTo(map); }
  }
  fAsOf.addEventListener('change', updateImagery);
  // The selected hit's own scene, drawn over the others (a hit of an older acquisition lies on its own imagery).
  const hitImagery = L.layerGroup().addTo(map);
  function showHitImagery(sceneId) {
    if (hitImagery.sceneId === sceneId) return;
    hitImagery.clearLayers();
    hitImagery.sceneId = sceneId;
    if (sceneId != null) L.tileLayer(`tiles/{z}/{x}/{y}.png?scene=${encodeURIComponent(sceneId)}`,
      { maxZoom: 22, tileSize: 256, className: 'hit-imagery', zIndex: 3 }).addTo(hitImagery);
  }
  let footprints = null;      // L.GeoJSON of the current results
  let selected = null;        // { layer, item }

  // Grid lines every 'step' degrees, a step that gives a handful of lines across the current view.
  function drawGraticule() {
    graticule.clearLayers();
    const b = map.getBounds();
    const span = Math.max(b.getEast() - b.getWest(), b.getNorth() - b.getSouth());
    const steps = [30, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001];
    const step = steps.find((s) => span / s >= 4) ?? steps[steps.length - 1];
    const style = { color: '#b8c4ce', weight: 1, interactive: false };
    const west = Math.max(-180, b.getWest()), east = Math.min(180, b.getEast());
    const south = Math.max(-85, b.getSouth()), north = Math.min(85, b.getNorth());
    for (let x = Math.ceil(west / step) * step; x <= east; x += step) L.polyline([[south, x], [north, x]], style).addTo(graticule);
    for (let y = Math.ceil(south / step) * step; y <= north; y += step) L.polyline([[y, west], [y, east]], style).addTo(graticule);
  }
  map.on('moveend', drawGraticule);
  drawGraticule();

  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  function viewBbox() {
    const b = map.getBounds();
    return [clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90), clamp(b.getEast(), -180, 180), clamp(b.getNorth(), -90, 90)]
      .map((v) => v.toFixed(6)).join(',');
  }

  function showError(message) {
    errorEl.textContent = message;
    errorEl.hidden = false;
  }

  // A colour-ramp legend: its title, the ramp (its class picks the colours in map.css) and the values at its two ends.
  function showRampLegend(titleText, rampClass, low, high) {
    const title = document.createElement('div');
    title.textContent = titleText;
    const ramp = document.createElement('div');
    ramp.className = rampClass;
    const ends = document.createElement('div');
    ends.className = 'ends';
    for (const value of [low, high]) {
      const span = document.createElement('span');
      span.textContent = value;
      ends.append(span);
    }
    legend.replaceChildren(title, ramp, ends);
    legend.hidden = false;
  }

  function clearResults() {
    errorEl.hidden = true;
    errorEl.textContent = '';
    list.replaceChildren();
    if (footprints) map.removeLayer(footprints);
    footprints = null;
    thumbLayer.clearLayers();
    hotLayer.clearLayers();
    lastResults = null;
    selected = null;
    legend.hidden = true;
    moreResults.hidden = true;
    page = null;
    viewGeneration++;   // an answer still on its way belongs to a view that is gone
    showHitImagery(null);
    clearSourceTile();
    clearFlip();
    downloads.hidden = true;
  }

  // On a narrow screen the lists are below the map: bring the map back into view when a list item moves it.
  const narrow = window.matchMedia('(max-width: 700px)');
  function showMapOnPhone() {
    if (narrow.matches) $('map').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  }

  function select(layer, item, zoom) {
    if (selected) { selected.layer.setStyle(FOOTPRINT); selected.item.classList.remove('selected'); }
    selected = { layer, item };
    layer.setStyle(SELECTED);
    layer.bringToFront();
    hotLayer.eachLayer((hot) => hot.bringToFront());   // the hot cells stay over the selected footprint
    item.classList.add('selected');
    showHitImagery(layer.feature?.properties?.scene_id ?? null);
    if (zoom) { map.fitBounds(layer.getBounds(), { padding: [80, 80] }); showMapOnPhone(); }
    else item.scrollIntoView({ block: 'nearest' });
  }

  const OUT_OF_RANGE_HINT = 'The scene\u2019s resolution is far outside the model\u2019s training range: captions and search results on it are unreliable';

  // Leaflet parses a string given to a tooltip or popup as HTML: data (captions, labels, queries) goes in as a node
  // holding it as text.
  function textNode(text) {
    const span = document.createElement('span');
    span.textContent = text;
    return span;
  }

  // A small label (status, "out of range"); its text is set as text, never parsed as HTML.
  function badge(text, kind, title) {
    const span = document.createElement('span');
    span.className = 'badge ' + kind;
    span.textContent = text;
    if (title) span.title = title;
    return span;
  }

  function resultItem(feature) {
    const p = feature.properties;
    const li = document.createElement('li');
    li.dataset.tileId = p.tile_id;
    const img = document.createElement('img');
    img.src = p.thumbnail_url;
    img.alt = 'thumbnail of tile ' + p.tile_id;
    img.loading = 'lazy';
    const text = document.createElement('div');
    const caption = document.createElement('div');
    caption.className = 'caption';
    caption.textContent = p.caption ?? '(no caption)';
    const meta = document.createElement('div');
    meta.className = 'meta';
    const scene = String(p.scene).split(/[\\/]/).pop();
    // Relevance (issue 29): the calibrated chance of a match, when the model has one; "weak" below 0.5.
    const relevance = typeof p.relevance === 'number' ? ` · relevance ${p.relevance.toFixed(2)}${p.weak ? ' (weak)' : ''}` : '';
    meta.textContent = `#${p.rank} · score ${p.score.toFixed(3)}${relevance} · ${scene} · ${p.window.width}×${p.window.height}+${p.window.x}+${p.window.y}`;
    meta.title = p.scene;
    // Image-to-image: tiles that look like this one (its stored vector; the tile itself is left out).
    const similar = document.createElement('button');
    similar.type = 'button';
    similar.className = 'similar';
    similar.textContent = 'similar tiles';
    similar.addEventListener('click', (e) => {
      e.stopPropagation();
      const params = new URLSearchParams({ tile: String(p.tile_id) });
      // A tile's look-alikes rank 999 deep (the tile itself is left out of 1,000).
      if (k.value !== '') params.set('k', String(Math.min(999, Number(k.value) || 10)));
      for (const [name, value] of paramsFromForm()) if (name !== 'q' && name !== 'k') params.set(name, value);
      q.value = '';   // the search is by this tile now, not by the text
      history.replaceState(null, '', '?' + params.toString());
      search(params);
    });
    text.append(caption, meta);
    // The scene's resolution is far outside the model's training range: the result is unreliable.
    if (p.out_of_range) {
      const flags = document.createElement('div');
      flags.className = 'flags';
      flags.append(badge('out of range', 'oor', OUT_OF_RANGE_HINT));
      text.append(flags);
    }
    text.append(similar);
    li.append(img, text);
    return li;
  }

  // GET an API answer as JSON while the status line says what is happening; null (and the error shown) on failure.
  async function fetchApi(url, busy, what, init = {}) {
    statusEl.textContent = busy;
    let response, body;
    try {
      response = await fetch(url, { ...init, headers: { Accept: 'application/geo+json, application/json', ...(init.headers ?? {}) } });
      const text = await response.text();
      try { body = JSON.parse(text); } catch { body = { error: text || response.statusText }; }
    } catch (e) {
      statusEl.textContent = '';
      showError(`The ${what} request failed: ` + e.message);
      return null;
    }
    statusEl.textContent = '';
    if (!response.ok) {
      // The API answers 400 with {"error": ...}; problem details carry "detail"/"title".
      showError(`Error ${response.status}: ${body.error ?? body.detail ?? body.title ?? response.statusText}`);
      return null;
    }
    return body;
  }

  // The search shown: its parameters (without offset), its page size and the rows listed so far, for "more".
  let page = null;
  let viewGeneration = 0;

  function searchStatus(body, shown) {
    statusEl.textContent = shown === 0 ? 'No tiles found.' : `${shown} tile${shown === 1 ? '' : 's'} found.`;
    // No result reaches relevance 0.5 (or min_relevance): say so; the nearest are still listed, marked weak.
    if (shown > 0 && (body.good_match === false || body.below_min_relevance === true))
      statusEl.textContent += ' No good match: nothing reaches relevance 0.5; the nearest are shown.';
  }

  // One page of a search: GET /api/search, or with an image of the user's (a File) POST /api/search/image.
  function fetchPage(params, upload, busy) {
    if (!upload) return fetchApi('api/search?' + params.toString(), busy, 'search');
    return fetchApi('api/search/image?' + params.toString(), busy, 'image search',
      { method: 'POST', body: upload, headers: { 'Content-Type': upload.type || 'application/octet-stream' } });
  }

  async function search(params, upload = null) {
    clearResults();
    params = new URLSearchParams(params);
    params.delete('offset');
    // One acquisition per place unless the address says latest=false (hybrid search re-ranks the plain ranking).
    if (!params.has('latest') && params.get('mode') !== 'hybrid') params.set('latest', 'true');
    if (params.has('tile')) showSourceTile(params.get('tile'));
    if (upload) showSourceImage(upload);
    const generation = viewGeneration;
    const body = await fetchPage(params, upload, 'Searching…');
    if (!body || generation !== viewGeneration) return;
    const features = body.features ?? [];
    searchStatus(body, features.length);
    const items = new Map();
    const pageSize = Number(params.get('k') ?? 10) || 10;
    page = { params, pageSize, shown: features.length, items, upload };
    moreResults.hidden = features.length < pageSize;
    footprints = L.geoJSON(body, {
      style: () => ({ ...FOOTPRINT, className: 'footprint' }),
      filter: (f) => f.geometry != null,
      onEachFeature: (feature, layer) => {
        layer.bindTooltip(textNode(feature.properties.caption ?? ''), { sticky: true });
        const popup = document.createElement('div');
        popup.className = 'popup-caption';
        popup.textContent = feature.properties.caption ?? '(no caption)';
        layer.bindPopup(popup);
        layer.on('click', () => { const item = items.get(feature.properties.tile_id); if (item) select(layer, item, false); });
      },
    }).addTo(map);
    drawThumbnails(body);
    drawHotCells(features);
    listResults(features, footprints.getLayers(), items);
    setDownloads();
    if (sourceLayer) sourceLayer.bringToFront();   // the similar-tiles source stays visible over the results
    if (footprints.getLayers().length > 0) map.fitBounds(footprints.getBounds(), { padding: [30, 30] });
  }

  // "Download": the rows listed (the same ranking, k = rows shown) as GeoJSON or GeoParquet from /api/search/download.
  function setDownloads() {
    // An image search's page is a POST of the image: no address to download it from.
    if (!page || page.shown === 0 || page.upload) { downloads.hidden = true; return; }
    const params = new URLSearchParams(page.params);
    params.set('k', String(Math.min(1000, page.shown)));
    for (const [id, format] of [['downloadGeojson', 'geojson'], ['downloadParquet', 'geoparquet']]) {
      params.set('format', format);
      $(id).href = 'api/search/download?' + params.toString();
    }
    downloads.hidden = false;
  }

  // "Similar tiles": the tile it started from, as a chip (thumbnail, id) and its footprint outlined on the map.
  const SOURCE = { color: '#00b7ff', weight: 4, opacity: 1, dashArray: '8 5', fill: false, interactive: false, className: 'source-footprint' };
  let sourceLayer = null;
  function clearSourceTile() {
    if (sourceLayer) map.removeLayer(sourceLayer);
    sourceLayer = null;
    sourceTileEl.replaceChildren();
    sourceTileEl.hidden = true;
  }
  function showSourceTile(tileId) {
    const img = document.createElement('img');
    img.src = `api/tiles/${encodeURIComponent(tileId)}/thumbnail.png`;
    img.alt = `tile ${tileId}`;
    const label = document.createElement('span');
    label.textContent = `similar to tile ${tileId}`;
    sourceTileEl.replaceChildren(img, label);
    sourceTileEl.dataset.tileId = tileId;
    sourceTileEl.hidden = false;
    fetch(`api/tiles/${encodeURIComponent(tileId)}`, { headers: { Accept: 'application/geo+json' } })
      .then((r) => (r.ok ? r.json() : null))
      .then((body) => {
        if (!body || sourceTileEl.dataset.tileId !== tileId || sourceTileEl.hidden) return;
        const f = (body.features ?? [])[0];
        if (f?.properties?.caption) label.textContent += ' · ' + f.properties.caption;
        if (f?.geometry) sourceLayer = L.geoJSON(f, { style: () => SOURCE, interactive: false }).addTo(map);
      })
      .catch(() => {});
  }

  // "By image": the user's image as the chip (an object URL of the file, never sent anywhere but the search).
  let sourceImageUrl = null;
  function showSourceImage(file) {
    if (sourceImageUrl) URL.revokeObjectURL(sourceImageUrl);
    sourceImageUrl = URL.createObjectURL(file);
    const img = document.createElement('img');
    img.src = sourceImageUrl;
    img.alt = 'your image';
    const label = document.createElement('span');
    label.textContent = `similar to your image ${file.name}`;
    sourceTileEl.replaceChildren(img, label);
    delete sourceTileEl.dataset.tileId;
    sourceTileEl.hidden = false;
  }

  // A list row per feature, linked to its footprint among 'layers' (the footprints drawn for these features).
  function listResults(features, layers, items) {
    const layersById = new Map();
    for (const layer of layers) layersById.set(layer.feature.properties.tile_id, layer);
    for (const feature of features) {
      const li = resultItem(feature);
      items.set(feature.properties.tile_id, li);
      const layer = layersById.get(feature.properties.tile_id);
      if (layer) li.addEventListener('click', () => select(layer, li, true));
      list.append(li);
    }
  }

  // "More": the next page of the same ranking (offset = rows listed so far), appended to the list and the map.
  async function searchMore() {
    if (!page || !footprints) return;
    const current = page;
    const params = new URLSearchParams(current.params);
    params.set('offset', String(current.shown));
    moreResults.disabled = true;
    const body = await fetchPage(params, current.upload, 'Loading more…');
    moreResults.disabled = false;
    if (!body || page !== current) return;
    const features = body.features ?? [];
    const before = new Set(footprints.getLayers());
    footprints.addData(features);
    const added = footprints.getLayers().filter((l) => !before.has(l));
    drawHotCells(features);
    listResults(features, added, current.items);
    current.shown += features.length;
    setDownloads();
    if (lastResults) { lastResults = { ...lastResults, features: [...(lastResults.features ?? []), ...features] }; drawThumbnails(lastResults); }
    searchStatus(body, current.shown);
    moreResults.hidden = features.length < current.pageSize;
  }
  moreResults.addEventListener('click', searchMore);

  // Each result's thumbnail over its footprint's box, while "thumbnails" is ticked.
  let lastResults = null;
  function drawThumbnails(body) {
    lastResults = body;
    thumbLayer.clearLayers();
    if (!thumbs.checked || !body) return;
    for (const f of body.features ?? []) {
      if (!f.geometry || !f.properties.thumbnail_url) continue;
      const ring = f.geometry.coordinates[0];
      const lons = ring.map((c) => c[0]), lats = ring.map((c) => c[1]);
      L.imageOverlay(f.properties.thumbnail_url, [[Math.min(...lats), Math.min(...lons)], [Math.max(...lats), Math.max(...lons)]],
        { className: 'thumb-overlay', interactive: false }).addTo(thumbLayer);
    }
    if (footprints) footprints.bringToFront();
  }
  thumbs.addEventListener('change', () => drawThumbnails(lastResults));

  // Changes: tile pairs over the same ground (GET /api/changes), overlap footprints coloured from green (unchanged)
  // to red (the most changed pair of the answer), before and after thumbnails side by side.
  const changesForm = $('changes'), beforeIn = $('before'), afterIn = $('after'), towardIn = $('toward');
  const changeColour = (t) => `hsl(${Math.round(120 * (1 - t))}, 85%, 42%)`;

  function changeItem(feature, t) {
    const p = feature.properties;
    const li = document.createElement('li');
    li.className = 'change';
    li.dataset.beforeTile = p.before.tile_id;
    const pair = document.createElement('div');
    pair.className = 'pair';
    for (const [side, label] of [[p.before, 'before'], [p.after, 'after']]) {
      const fig = document.createElement('figure');
      const img = document.createElement('img');
      img.src = side.thumbnail_url;
      img.alt = `${label}: tile ${side.tile_id}`;
      img.loading = 'lazy';
      const cap = document.createElement('figcaption');
      cap.textContent = `${label} · ${side.acquired_at ? side.acquired_at.slice(0, 10) : 'date unknown'} · ${side.caption ?? '(no caption)'}`;
      fig.append(img, cap);
      pair.append(fig);
    }
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.style.borderLeft = `6px solid ${changeColour(t)}`;
    meta.style.paddingLeft = '4px';
    const score = p.toward_gain != null ? `toward ${p.toward_gain.toFixed(3)}` : `change ${p.distance.toFixed(3)}`;
    meta.textContent = `#${p.rank} · ${score} · overlap IoU ${p.iou.toFixed(2)} · tiles ${p.before.tile_id} → ${p.after.tile_id}`;
    // Whether the after tile shows the toward text at all (its calibrated relevance), apart from how far it moved.
    if (p.after_relevance != null) {
      const match = document.createElement('div');
      match.className = p.matches ? 'match' : 'match no-match';
      match.textContent = `after tile ${p.matches ? 'matches' : 'does not match'} the text (relevance ${p.after_relevance.toFixed(2)})`;
      meta.append(match);
    }
    li.append(pair, meta);
    return li;
  }

  async function changes(params) {
    clearResults();
    const body = await fetchApi('api/changes?' + params.toString(), 'Comparing…', 'changes');
    if (!body) return;
    const features = body.features ?? [];
    const notes = body.notes ?? [];
    statusEl.textContent = features.length === 0 ? 'No changes found.' + (notes.length ? ' ' + notes.join(' ') : '') : `${features.length} pair${features.length === 1 ? '' : 's'} compared.`;
    if (features.length > 0 && body.any_match === false) statusEl.textContent += ` No pair's after tile matches “${body.toward}” (none reaches relevance 0.5).`;
    else if (features.length > 0 && body.relevance_note) statusEl.textContent += ` Note: ${body.relevance_note}`;
    const score = (f) => (f.properties.toward_gain ?? f.properties.distance);
    const top = Math.max(1e-6, ...features.map(score));
    const share = (f) => Math.max(0, Math.min(1, score(f) / top));
    legend.replaceChildren();
    if (features.length > 0) {
      showRampLegend(params.get('toward') ? `Movement toward “${params.get('toward')}”` : 'Change (cosine distance between the two tiles)',
        'ramp', '0', top.toFixed(3));
    }
    const items = new Map();
    footprints = L.geoJSON(body, {
      style: (f) => ({ color: changeColour(share(f)), weight: 3, opacity: 1, fillColor: changeColour(share(f)), fillOpacity: 0.35, className: 'change-footprint' }),
      filter: (f) => f.geometry != null,
      onEachFeature: (feature, layer) => {
        const p = feature.properties;
        layer.bindTooltip(textNode(`${p.before.caption ?? ''} → ${p.after.caption ?? ''}`), { sticky: true });
        layer.on('click', () => items.get(feature)?.scrollIntoView({ block: 'nearest' }));
      },
    }).addTo(map);
    for (const feature of features) {
      const li = changeItem(feature, share(feature));
      items.set(feature, li);
      list.append(li);
    }
    setupFlip(features);
    if (footprints.getLayers().length > 0) map.fitBounds(footprints.getBounds(), { padding: [30, 30] });
  }

  // Flip: the imagery under the pairs is the after scenes' or the before scenes' (each scene's own tiles, over the
  // others); the button swaps them (a button, so the keyboard reaches it).
  const flipLayer = L.layerGroup().addTo(map);
  let flipSides = null;
  function clearFlip() {
    flipLayer.clearLayers();
    flipSides = null;
    flipButton.hidden = true;
  }
  function showFlipSide(side) {
    flipSides.shown = side;
    flipLayer.clearLayers();
    for (const id of flipSides[side]) L.tileLayer(`tiles/{z}/{x}/{y}.png?scene=${encodeURIComponent(id)}`,
      { maxZoom: 22, tileSize: 256, className: `change-imagery ${side}-imagery`, zIndex: 3 }).addTo(flipLayer);
    const other = side === 'after' ? 'before' : 'after';
    flipButton.textContent = `Imagery: ${side} (${flipSides.dates[side]}) · show ${other}`;
    flipButton.dataset.side = side;
  }
  function setupFlip(features) {
    const scenes = (side) => [...new Set(features.map((f) => f.properties[side]?.scene_id).filter((id) => id != null))].slice(0, 8);
    const dates = (side) => [...new Set(features.map((f) => (f.properties[side]?.acquired_at ?? '').slice(0, 10)).filter(Boolean))].sort();
    const span = (d) => (d.length === 0 ? 'date unknown' : d.length === 1 ? d[0] : `${d[0]} – ${d[d.length - 1]}`);
    if (features.length === 0) return;
    flipSides = { before: scenes('before'), after: scenes('after'), dates: { before: span(dates('before')), after: span(dates('after')) } };
    flipButton.hidden = false;
    showFlipSide('after');
  }
  flipButton.addEventListener('click', () => { if (flipSides) showFlipSide(flipSides.shown === 'after' ? 'before' : 'after'); });

  changesForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const params = new URLSearchParams({ before: beforeIn.value.trim(), after: afterIn.value.trim() });
    if (towardIn.value.trim() !== '') params.set('toward', towardIn.value.trim());
    if (k.value !== '') params.set('k', k.value);
    if (inView.checked || !/^\d+$/.test(params.get('before'))) params.set('bbox', viewBbox());
    history.replaceState(null, '', '?' + params.toString());
    changes(params);
  });

  // Heat map: every tile in the view (or of a scene) coloured by its similarity to the text (GET /api/heatmap), from
  // blue (the answer's lowest score) to red (its highest); the legend gives the two ends.
  const heatButton = $('heat');
  const heatColour = (t) => `hsl(${Math.round(240 * (1 - t))}, 90%, 50%)`;

  async function heatmap(params, fit) {
    clearResults();
    params = new URLSearchParams(params);
    if (!params.has('latest')) params.set('latest', 'true');   // one acquisition per place, never stacked
    const generation = viewGeneration;
    const body = await fetchApi('api/heatmap?' + params.toString(), 'Scoring tiles…', 'heat map');
    if (!body || generation !== viewGeneration) return;
    const features = body.features ?? [];
    const lo = body.min_score ?? 0, hi = body.max_score ?? 1;
    const share = (f) => (hi > lo ? (f.properties.score - lo) / (hi - lo) : 1);
    const tiles = body.tiles ?? features.length;
    statusEl.textContent = features.length === 0 ? 'No tiles in this area.' : `${tiles} tile${tiles === 1 ? '' : 's'} scored against “${body.query}”.`;
    if (body.cell_tiles > 0) statusEl.textContent += ` ${body.cell_tiles} drawn by cell.`;
    legend.replaceChildren();
    if (features.length > 0) showRampLegend(`Similarity to “${body.query}”`, 'ramp heat', lo.toFixed(3), hi.toFixed(3));
    footprints = L.geoJSON(body, {
      style: (f) => ({ stroke: false, fillColor: heatColour(share(f)), fillOpacity: 0.6, className: f.properties.row != null ? 'heat-cell' : 'heat-footprint' }),
      filter: (f) => f.geometry != null,
      onEachFeature: (feature, layer) => layer.bindTooltip(textNode(`score ${feature.properties.score.toFixed(3)} · tile ${feature.properties.tile_id}`), { sticky: true }),
    }).addTo(map);
    // A scene's heat map, or one opened from the address, zooms onto its tiles (onto its bbox when it has none);
    // a heat map of the current view stays where the user is.
    if (!fit) return;
    if (footprints.getLayers().length > 0) map.fitBounds(footprints.getBounds(), { padding: [30, 30] });
    else if (params.has('bbox')) {
      const b = params.get('bbox').split(',').map(Number);
      if (b.length === 4 && b.every(Number.isFinite)) map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
    }
  }

  heatButton.addEventListener('click', () => {
    // With a scene filter, that scene's tiles (zoomed onto); otherwise the view's.
    const params = new URLSearchParams({ q: q.value });
    if (sceneFilter) params.set('scene', sceneFilter.id); else params.set('bbox', viewBbox());
    if (fAsOf.value.trim() !== '') params.set('as_of', fAsOf.value.trim());
    if (whereInTile.checked) params.set('cells', '1');
    history.replaceState(null, '', '?heat=1&' + params.toString());
    heatmap(params, sceneFilter != null);
  });

  // Land use: every tile of a scene with the label whose prompt is nearest (GET /api/scenes/{id}/classes), coloured
  // as in the GeoTIFF `rscapret classify` writes; the legend lists the labels the tiles took, with their counts.
  const classesForm = $('classes'), classSceneIn = $('classScene'), classLabelsIn = $('classLabels');

  async function classes(scene, labels) {
    clearResults();
    const params = new URLSearchParams();
    if (labels) params.set('labels', labels);
    const body = await fetchApi(`api/scenes/${encodeURIComponent(scene)}/classes?` + params.toString(), 'Labelling…', 'land-use');
    if (!body) return;
    const features = body.features ?? [];
    statusEl.textContent = `${features.length} tile${features.length === 1 ? '' : 's'} of scene ${body.scene_id} labelled (prompt “${body.template}”).`;
    legend.replaceChildren();
    const title = document.createElement('div');
    title.textContent = 'Land use (zero-shot)';
    legend.append(title);
    for (const entry of (body.legend ?? []).filter((l) => l.tiles > 0).sort((a, b) => b.tiles - a.tiles)) {
      const row = document.createElement('div');
      row.className = 'class-entry';
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = entry.colour;
      row.append(swatch, document.createTextNode(`${entry.label} (${entry.tiles})`));
      legend.append(row);
    }
    legend.hidden = false;
    footprints = L.geoJSON(body, {
      style: (f) => ({ color: f.properties.colour, weight: 1, opacity: 0.9, fillColor: f.properties.colour, fillOpacity: 0.55, className: 'class-footprint' }),
      filter: (f) => f.geometry != null,
      onEachFeature: (feature, layer) => {
        const p = feature.properties;
        const margin = p.margin == null ? '' : `, margin ${p.margin.toFixed(3)}`;
        layer.bindTooltip(textNode(`${p.label} (score ${p.score.toFixed(3)}${margin}) · tile ${p.tile_id}`), { sticky: true });
      },
    }).addTo(map);
    if (footprints.getLayers().length > 0) map.fitBounds(footprints.getBounds(), { padding: [30, 30] });
  }

  classesForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const scene = classSceneIn.value.trim(), labels = classLabelsIn.value.trim();
    if (!/^\d+$/.test(scene)) { clearResults(); showError('Give the id of an ingested scene (see the results’ scene or `rscapret db status`).'); return; }
    const params = new URLSearchParams({ classes: scene });
    if (labels) params.set('labels', labels);
    history.replaceState(null, '', '?' + params.toString());
    classes(scene, labels);
  });

  // The form's fields, also kept in the page address so a search can be bookmarked or shared.
  function paramsFromForm() {
    const params = new URLSearchParams({ q: q.value });
    if (k.value !== '') params.set('k', k.value);
    if (inView.checked) params.set('bbox', viewBbox());
    // The date and near filters (the API checks them and answers 400 with why).
    for (const [name, input] of [['after', fAfter], ['before', fBefore], ['near', fNear], ['as_of', fAsOf]])
      if (input.value.trim() !== '') params.set(name, input.value.trim());
    if (sceneFilter) params.set('scene', sceneFilter.id);
    if (whereInTile.checked) params.set('localize', '1');
    if (hybrid.checked) params.set('mode', 'hybrid');
    return params;
  }

  // The scene filter: a scene picked in the scenes list ("search here"), shown as a chip in the filters, kept in the
  // address (scene=ID); searches and the heat map keep to its tiles, and its imagery is drawn over the others.
  let sceneFilter = null;
  const sceneFilterEl = $('sceneFilter'), sceneFilterImagery = L.layerGroup().addTo(map);
  function setSceneFilter(scene) {
    sceneFilter = scene;
    sceneFilterImagery.clearLayers();
    sceneFilterEl.hidden = scene == null;
    if (!scene) return;
    $('sceneFilterName').textContent = `scene ${scene.id}` + (scene.name ? ` · ${scene.name}` : '');
    sceneFilterEl.title = scene.path ?? '';
    L.tileLayer(`tiles/{z}/{x}/{y}.png?scene=${encodeURIComponent(scene.id)}`,
      { maxZoom: 22, tileSize: 256, className: 'filter-imagery', zIndex: 2 }).addTo(sceneFilterImagery);
  }
  $('sceneFilterClear').addEventListener('click', () => {
    setSceneFilter(null);
    clearSceneSelection();   // "search here" selected it; every scene's imagery again
    if (q.value.trim() !== '') form.requestSubmit();
  });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    updateImagery();
    const params = paramsFromForm();
    history.replaceState(null, '', '?' + params.toString());
    search(params);
  });

  // "By image": tiles that look like an image of the user's (POST /api/search/image), with the form's k and filters.
  // The image cannot live in the address, so the address drops the text search; "more" posts it again.
  const byImage = $('byImage');
  const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/tiff', 'image/webp'];
  byImage.addEventListener('change', () => {
    const file = byImage.files?.[0];
    byImage.value = '';   // choosing the same file again searches again
    if (file) searchByImage(file);
  });
  function searchByImage(file) {
    // A type the browser knows and that is not an image we read (a PDF, a zip): said here, without an upload.
    if (file.type && !IMAGE_TYPES.includes(file.type)) { clearResults(); showError(`${file.name} is not a PNG, JPEG, TIFF or WebP image.`); return; }
    if (file.size > 20_000_000) { clearResults(); showError(`${file.name} is larger than 20 MB, the upload limit.`); return; }
    updateImagery();
    const params = paramsFromForm();
    // Text-only parameters: the image is the query; "where in the tile" and caption matching need a text.
    for (const name of ['q', 'localize', 'mode']) params.delete(name);
    q.value = '';
    history.replaceState(null, '', location.pathname);
    search(params, file);
  }

  // An image file dropped on the page searches by it (over the chat panel it joins the conversation: chat.js). Without
  // this the browser would open the dropped file in place of the page, and the map's state would be lost.
  const dragsFiles = (e) => [...(e.dataTransfer?.types ?? [])].includes('Files');
  let dragDepth = 0;
  document.addEventListener('dragenter', (e) => { if (dragsFiles(e)) { dragDepth++; document.body.classList.add('dropping'); } });
  document.addEventListener('dragleave', (e) => { if (dragsFiles(e) && --dragDepth <= 0) { dragDepth = 0; document.body.classList.remove('dropping'); } });
  document.addEventListener('dragover', (e) => {
    if (!dragsFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  document.addEventListener('drop', (e) => {
    dragDepth = 0;
    document.body.classList.remove('dropping');
    if (!dragsFiles(e)) return;
    e.preventDefault();
    if (e.target instanceof Element && e.target.closest('#chatPanel')) return;
    const file = e.dataTransfer.files?.[0];
    if (file) searchByImage(file);
  });

  // Opening the page with ?q=...[&k=&bbox=&near=&after=&before=] runs that search (the filters fill their inputs).
  // ?tile=ID runs an image-to-image search from that tile.
  // ?before=...&after=...[&toward=&k=&bbox=] without q or tile opens the changes view.
  // ?classes=SCENE[&labels=a,b] opens the land-use view.
  // ?heat=1&q=TEXT&bbox=... (or &scene=ID) opens the heat map.
  const initial = new URLSearchParams(location.search);
  fAsOf.value = initial.get('as_of') ?? '';
  updateImagery();
  // A search's scene filter comes back from the address (a heat map's scene is only its area).
  if (/^\d+$/.test(initial.get('scene') ?? '') && !initial.has('heat') && (initial.has('q') || initial.has('tile'))) setSceneFilter({ id: initial.get('scene') });
  whereInTile.checked = initial.get('localize') === '1' || initial.get('cells') === '1';
  hybrid.checked = initial.get('mode') === 'hybrid';
  if (initial.has('heat')) {
    q.value = initial.get('q') ?? '';
    const params = new URLSearchParams(initial);
    params.delete('heat');
    heatmap(params, true);
  } else if (initial.has('classes')) {
    classSceneIn.value = initial.get('classes');
    classLabelsIn.value = initial.get('labels') ?? '';
    classes(classSceneIn.value, classLabelsIn.value);
  } else if (initial.has('q') || initial.has('tile')) {
    q.value = initial.get('q') ?? '';
    if (initial.has('k')) k.value = initial.get('k');
    fAfter.value = initial.get('after') ?? '';
    fBefore.value = initial.get('before') ?? '';
    fNear.value = initial.get('near') ?? '';
    search(initial);
  } else if (initial.has('before') && initial.has('after')) {
    beforeIn.value = initial.get('before');
    afterIn.value = initial.get('after');
    towardIn.value = initial.get('toward') ?? '';
    if (initial.has('k')) k.value = initial.get('k');
    changes(initial);
  }

  // Scenes: the catalogue's archive paths and the version each shows (GET /api/scenes), a page at a time. A row
  // zooms the map onto its scene and shows that scene's own imagery (tiles/...png?scene=ID) over the others, with
  // its bounding box outlined. Every field comes from files and the catalogue: set as text, never as HTML.
  const sceneList = $('sceneList'), scenesCount = $('scenesCount'), scenesError = $('scenesError');
  const moreScenes = $('moreScenes'), allImagery = $('allImagery'), scenesReload = $('scenesReload');
  const SCENE_OUTLINE = { color: '#0a66ff', weight: 2, opacity: 0.9, dashArray: '6 4', fill: false, interactive: false, className: 'scene-outline' };
  const SCENE_PAGE = 100;
  const KNOWN_STATUSES = ['done', 'empty', 'pending', 'ingesting', 'failed', 'removed', 'superseded'];
  let scenesLoaded = 0, scenesTotal = 0, scenesBusy = false;
  let sceneImagery = null, sceneOutline = null, selectedScene = null;

  function sceneItem(s) {
    const li = document.createElement('li');
    li.className = 'scene';
    li.tabIndex = 0;
    if (s.id != null) li.dataset.sceneId = String(s.id);
    const head = document.createElement('div');
    head.className = 'scene-head';
    const status = String(s.status ?? 'unknown');
    head.append(badge(status, KNOWN_STATUSES.includes(status) ? 'status-' + status : 'status-other'));
    if (s.out_of_range) head.append(badge('out of range', 'oor', OUT_OF_RANGE_HINT));
    const name = document.createElement('span');
    name.className = 'scene-path';
    name.title = s.path ?? '';
    // Text nodes with a line-break opportunity (<wbr>) after each '/' and '_', so long file names wrap at their parts.
    for (const part of String(s.path ?? '').split(/(?<=[\/_])/)) name.append(document.createTextNode(part), document.createElement('wbr'));
    head.append(name);
    const meta = document.createElement('div');
    meta.className = 'meta';
    const tiles = Number(s.tiles ?? 0);
    meta.textContent = [
      s.id != null ? `scene ${s.id}` : 'no version yet',
      s.acquired_at ? String(s.acquired_at).slice(0, 10) : 'date unknown',
      `${tiles} tile${tiles === 1 ? '' : 's'}`,
      // The server decides what a missing coverage means (SceneListing.CoverageState).
      s.coverage_state === 'measured' && typeof s.coverage === 'number' ? `coverage ${(s.coverage * 100).toFixed(1)}%`
        : s.coverage_state === 'no_valid_pixels' ? 'no valid pixels (nodata throughout)' : 'coverage not measured',
    ].join(' · ');
    li.append(head, meta);
    for (const w of s.warnings ?? []) {
      const warning = document.createElement('div');
      warning.className = 'scene-warning';
      warning.textContent = '\u26a0 ' + w;
      warning.title = w;
      li.append(warning);
    }
    if (s.status === 'failed' && s.error) {
      const error = document.createElement('div');
      error.className = 'scene-error';
      error.textContent = 'error: ' + s.error;
      error.title = s.error;
      li.append(error);
    }
    if (s.id != null && s.status === 'done') {
      const only = document.createElement('button');
      only.type = 'button';
      only.className = 'scene-filter';
      only.textContent = 'search here';
      only.title = 'Keep searches and the heat map to this scene';
      only.addEventListener('click', (e) => {
        e.stopPropagation();
        setSceneFilter({ id: String(s.id), name: String(s.path ?? '').split(/[\\/]/).pop(), path: s.path });
        selectScene(s, li);
        if (q.value.trim() !== '') form.requestSubmit();
      });
      li.append(only);
    }
    li.addEventListener('click', () => selectScene(s, li));
    li.addEventListener('keydown', (e) => { if (e.target === li && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); selectScene(s, li); } });
    return li;
  }

  function clearSceneSelection() {
    if (sceneImagery) map.removeLayer(sceneImagery);
    if (sceneOutline) map.removeLayer(sceneOutline);
    if (selectedScene) selectedScene.classList.remove('selected');
    sceneImagery = sceneOutline = selectedScene = null;
    allImagery.hidden = true;
  }

  function selectScene(s, li) {
    clearSceneSelection();
    scenesError.hidden = true;
    selectedScene = li;
    li.classList.add('selected');
    const b = s.bbox;
    if (!Array.isArray(b) || b.length !== 4 || !b.every(Number.isFinite)) {
      scenesError.textContent = `${s.path}: no footprint to show (${s.status}).`;
      scenesError.hidden = false;
      return;
    }
    const bounds = L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
    sceneOutline = L.rectangle(bounds, SCENE_OUTLINE).addTo(map);
    // Only a searchable version has imagery on the map (the map layer draws complete scenes).
    if (s.id != null && s.status === 'done') {
      sceneImagery = L.tileLayer(`tiles/{z}/{x}/{y}.png?scene=${encodeURIComponent(s.id)}`,
        { maxZoom: 22, tileSize: 256, className: 'scene-imagery', zIndex: 2 }).addTo(map);
    }
    allImagery.hidden = false;
    map.fitBounds(bounds, { padding: [24, 24] });
    showMapOnPhone();
  }

  allImagery.addEventListener('click', clearSceneSelection);

  async function loadScenes(reset) {
    if (scenesBusy) return;
    scenesBusy = true;
    scenesError.hidden = true;
    try {
      const offset = reset ? 0 : scenesLoaded;
      const params = new URLSearchParams({ limit: String(SCENE_PAGE), offset: String(offset) });
      let response, body;
      try {
        response = await fetch('api/scenes?' + params.toString(), { headers: { Accept: 'application/json' } });
        const text = await response.text();
        try { body = JSON.parse(text); } catch { body = { error: text || response.statusText }; }
      } catch (e) {
        scenesError.textContent = 'Loading the scenes failed: ' + e.message;
        scenesError.hidden = false;
        return;
      }
      if (!response.ok) {
        scenesError.textContent = `Scenes: error ${response.status}: ${body.error ?? response.statusText}`;
        scenesError.hidden = false;
        return;
      }
      if (reset) { clearSceneSelection(); sceneList.replaceChildren(); scenesLoaded = 0; }
      const rows = body.scenes ?? [];
      for (const s of rows) sceneList.append(sceneItem(s));
      scenesLoaded += rows.length;
      scenesTotal = body.total ?? scenesLoaded;
      scenesCount.textContent = scenesLoaded < scenesTotal ? `(${scenesLoaded} of ${scenesTotal})` : `(${scenesTotal})`;
      moreScenes.hidden = scenesLoaded >= scenesTotal;
      if (scenesTotal === 0) {
        const empty = document.createElement('li');
        empty.className = 'empty';
        empty.textContent = 'No scenes in the catalogue yet (rscapret ingest, or index an archive).';
        sceneList.append(empty);
      }
    } finally {
      scenesBusy = false;
    }
  }

  moreScenes.addEventListener('click', () => loadScenes(false));
  scenesReload.addEventListener('click', () => loadScenes(true));
  loadScenes(true);

  // Narrow screens: the filters and the other forms fold under "Tools", the lists under "Hide list" (map.css shows the
  // two buttons only there); the map keeps the rest of the screen.
  const toolsToggle = $('toolsToggle'), panelToggle = $('panelToggle');
  toolsToggle.addEventListener('click', () => {
    const open = document.body.classList.toggle('tools-open');
    toolsToggle.setAttribute('aria-expanded', String(open));
    map.invalidateSize();
  });
  panelToggle.addEventListener('click', () => {
    const collapsed = document.body.classList.toggle('list-collapsed');
    panelToggle.setAttribute('aria-expanded', String(!collapsed));
    panelToggle.textContent = collapsed ? 'Show list' : 'Hide list';
    map.invalidateSize();
  });
  new ResizeObserver(() => map.invalidateSize()).observe($('map'));

  window.rscapretMap = { map, imagery, basemap, basemapReady, sceneImagery: () => sceneImagery, // for tests and the browser console
    hitImagery, flipLayer, sceneFilter: () => sceneFilter, source: () => sourceLayer };
})();
