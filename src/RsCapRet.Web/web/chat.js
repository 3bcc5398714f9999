// The chat panel (issue 34): a dialogue with the model over tiles, uploaded images and text. The server keeps no
// state: the page keeps the conversation (turns) and posts it to /api/chat with each new turn; the answer is the model's
// text, and when it retrieved ([RET]) the tiles it found, which the page lists as thumbnails and sends back with the
// answer so they stay in the conversation. Every word from the server or the user is set as text, never as HTML.
'use strict';
(function () {
  // The server's bounds (ChatEndpoints.cs): the newest turns within them are sent.
  const MAX_TURNS = 12, MAX_IMAGES = 6, MAX_TILES = 20, MAX_USER_TEXT = 400, K = 3;
  // Uploads are scaled down to this side before they are sent (the server reads them at most 1024 px anyway): each
  // request carries the conversation's images again.
  const UPLOAD_SIDE = 1024, MAX_UPLOAD_BYTES = 20_000_000;
  const SELECTED = { color: '#ff00ff', weight: 6, opacity: 1, fillColor: '#ff00ff', fillOpacity: 0.35, className: 'chat-selected' };

  const $ = (id) => document.getElementById(id);
  const panel = $('chatPanel'), toggle = $('chatToggle'), transcript = $('chatTranscript'), form = $('chatForm');
  const input = $('chatInput'), sendButton = $('chatSend'), imageInput = $('chatImage'), statusEl = $('chatStatus');
  const mapApi = window.rscapretMap;
  const map = mapApi?.map;
  const chatLayer = map ? L.layerGroup().addTo(map) : null;   // the tile selected from the transcript

  let turns = [];        // the conversation as the server is sent it
  let noteShown = false; // the serving model's note (a caption-only model) is shown once per conversation
  let busy = false;
  let selectedItem = null;

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text != null) e.textContent = text;
    return e;
  }

  function setOpen(open) {
    panel.hidden = !open;
    document.body.classList.toggle('chat-open', open);
    toggle.setAttribute('aria-expanded', String(open));
    if (map) map.invalidateSize();
    if (open) { if (transcript.childElementCount === 0) showEmpty(); input.focus(); }
  }
  const narrow = window.matchMedia('(max-width: 700px)');
  toggle.addEventListener('click', () => {
    // On a phone "Chat" sits under "Tools": opening the chat folds the tools away so the map keeps the screen's top.
    if (panel.hidden && narrow.matches && document.body.classList.contains('tools-open')) $('toolsToggle').click();
    setOpen(panel.hidden);
  });
  $('chatClose').addEventListener('click', () => setOpen(false));

  function showEmpty() {
    transcript.replaceChildren(el('li', 'chat-empty',
      'Ask the model about places, e.g. “show me a farm” (it retrieves tiles), add an image (“Chat about this tile” on a search result, or “Add image”), then ask about it.'));
  }
  $('chatReset').addEventListener('click', () => {
    if (busy) return;
    turns = [];
    noteShown = false;
    if (chatLayer) chatLayer.clearLayers();
    selectedItem = null;
    statusEl.textContent = '';
    showEmpty();
  });

  function append(item) {
    transcript.querySelector('.chat-empty')?.remove();
    transcript.append(item);
    item.scrollIntoView({ block: 'nearest' });
    return item;
  }

  function bubble(kind, who, text) {
    const li = el('li', kind);
    li.append(el('span', 'who', who));
    if (text === '') li.append(el('span', 'no-text', '(no text)'));
    else li.append(document.createTextNode(text));
    return li;
  }

  function imageBubble(src, label) {
    const li = el('li', 'chat-image');
    const img = el('img');
    img.src = src;
    img.alt = label;
    li.append(img, el('div', 'label', label));
    return li;
  }

  // A retrieved tile selected from the transcript: its footprint highlighted and the map zoomed onto it.
  function selectTile(tile, item) {
    if (selectedItem) selectedItem.classList.remove('selected');
    selectedItem = item;
    item.classList.add('selected');
    if (!chatLayer) return;
    chatLayer.clearLayers();
    if (!tile.footprint) return;
    const layer = L.geoJSON(tile.footprint, { style: () => SELECTED, interactive: false }).addTo(chatLayer);
    map.fitBounds(layer.getBounds(), { padding: [80, 80] });
  }

  function tilesList(tiles) {
    const ol = el('ol', 'chat-tiles');
    tiles.forEach((t, i) => {
      const li = el('li');
      li.tabIndex = 0;
      li.dataset.tileId = String(t.tile_id);
      const img = el('img');
      img.src = t.thumbnail_url;
      img.alt = 'thumbnail of tile ' + t.tile_id;
      img.loading = 'lazy';
      const text = el('div');
      const relevance = typeof t.relevance === 'number' ? ` · relevance ${t.relevance.toFixed(2)}` : '';
      text.append(el('div', 'caption', t.caption ?? '(no caption)'),
        el('div', 'meta', `${i + 1}. tile ${t.tile_id} · score ${Number(t.score).toFixed(3)}${relevance} · ${t.scene_path}`));
      li.append(img, text);
      li.addEventListener('click', () => selectTile(t, li));
      li.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); selectTile(t, li); } });
      ol.append(li);
    });
    return ol;
  }

  // The newest turns within the server's bounds (older ones fall out of the model's context first anyway).
  function sendable() {
    let images = 0, tiles = 0, start = turns.length;
    for (let i = turns.length - 1; i >= 0 && turns.length - i <= MAX_TURNS; i--) {
      const t = turns[i];
      images += ('image_tile' in t || 'image_upload' in t) ? 1 : 0;
      tiles += t.tiles ? t.tiles.length : 0;
      if (images > MAX_IMAGES || tiles > MAX_TILES) break;
      start = i;
    }
    return turns.slice(start);
  }

  // Sends the conversation with 'turn' as its last; the model's answer goes into the transcript.
  async function send(turn) {
    if (busy) return false;
    busy = true;
    sendButton.disabled = true;
    imageInput.disabled = true;
    turns.push(turn);
    const pending = append(el('li', 'chat-model pending', 'the model is answering…'));
    statusEl.textContent = 'Answering…';
    let response, body;
    try {
      response = await fetch('api/chat', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ turns: sendable(), k: K }),
      });
      const text = await response.text();
      try { body = JSON.parse(text); } catch { body = { error: text || response.statusText }; }
    } catch (e) {
      response = null;
      body = { error: 'the request failed: ' + e.message };
    } finally {
      busy = false;
      sendButton.disabled = false;
      imageInput.disabled = false;
      statusEl.textContent = '';
    }
    pending.remove();
    if (!response || !response.ok) {
      turns.pop();   // the conversation stays as it was before the refused turn
      append(el('li', 'chat-error', response ? `Error ${response.status}: ${body.error ?? body.detail ?? response.statusText}` : body.error));
      return false;
    }
    if ('user' in turn) {
      const answer = { model: body.text, retrieved: body.retrieved === true };
      const tiles = body.tiles ?? [];
      if (answer.retrieved && tiles.length > 0) answer.tiles = tiles.map((t) => t.tile_id);
      turns.push(answer);
      const li = append(bubble('chat-model', answer.retrieved ? 'model (retrieved)' : 'model', body.text ?? ''));
      if (answer.retrieved && tiles.length === 0) li.append(el('div', 'no-text', 'no tiles found'));
      if (tiles.length > 0) li.append(tilesList(tiles));
      if (body.relevance_note && tiles.length > 0) li.title = body.relevance_note;
      if (body.grounding) {
        // A yes/no or "which one" verdict taken from the shared space: say how, as text.
        const g = body.grounding;
        const scores = (g.scores ?? []).map((x) => Number(x).toFixed(3)).join(' / ');
        const relevance = typeof g.relevance === 'number' ? `, relevance ${g.relevance.toFixed(3)}, yes at ${Number(g.yes_at).toFixed(3)}` : '';
        li.append(el('div', 'chat-grounding', `verdict from the shared space: image ${g.image} (cosine ${scores}${relevance}); the decoder wrote "${g.decoder_answer}"`));
      }
      li.scrollIntoView({ block: 'nearest' });
    } else {
      turn.description = body.description ?? body.text ?? '';
      append(bubble('chat-model', 'model', turn.description));
    }
    if (body.model_note && !noteShown) {
      noteShown = true;
      append(el('li', 'chat-note', 'Note: ' + body.model_note));
    }
    return true;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (text === '' || busy) return;
    if (text.length > MAX_USER_TEXT) { append(el('li', 'chat-error', `A message is at most ${MAX_USER_TEXT} characters.`)); return; }
    input.value = '';
    append(bubble('chat-user', 'you', text));
    await send({ user: text });
    input.focus();
  });

  // A stored tile joins the conversation as an image (the model describes it).
  async function chatAboutTile(tileId) {
    setOpen(true);
    if (busy) return;
    append(imageBubble(`api/tiles/${encodeURIComponent(tileId)}/thumbnail.png`, `tile ${tileId}`));
    await send({ image_tile: Number(tileId) });
  }

  // An image file: scaled to UPLOAD_SIDE as JPEG where the browser can decode it (TIFF it cannot: sent as it is).
  async function encodeUpload(file) {
    let bitmap = null;
    try { bitmap = await createImageBitmap(file); } catch { bitmap = null; }
    let blob = file;
    if (bitmap) {
      const scale = Math.min(1, UPLOAD_SIDE / Math.max(bitmap.width, bitmap.height));
      const canvas = document.createElement('canvas');
      canvas.width = Math.max(1, Math.round(bitmap.width * scale));
      canvas.height = Math.max(1, Math.round(bitmap.height * scale));
      canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      bitmap.close();
      blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.9)) ?? file;
    }
    if (blob.size > MAX_UPLOAD_BYTES) throw new Error(`the image is larger than ${MAX_UPLOAD_BYTES / 1e6} MB`);
    const dataUrl = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.onerror = () => reject(reader.error ?? new Error('the file cannot be read'));
      reader.readAsDataURL(blob);
    });
    return { base64: dataUrl.slice(dataUrl.indexOf(',') + 1), preview: bitmap ? dataUrl : null };
  }

  imageInput.addEventListener('change', async () => {
    const file = imageInput.files?.[0];
    imageInput.value = '';
    if (file) await addImageFile(file);
  });
  // An image file dropped on the panel joins the conversation (map.js leaves drops here to it).
  panel.addEventListener('drop', async (e) => {
    const file = e.dataTransfer?.files?.[0];
    if (file) { e.preventDefault(); await addImageFile(file); }
  });

  async function addImageFile(file) {
    // The file input is disabled while the model answers; a drop is not, so it says why it was not added.
    if (busy) { statusEl.textContent = `Answering… add ${file.name} again after the answer.`; return; }
    let encoded;
    try { encoded = await encodeUpload(file); } catch (e) { append(el('li', 'chat-error', `${file.name}: ${e.message}`)); return; }
    const li = append(encoded.preview ? imageBubble(encoded.preview, file.name) : el('li', 'chat-image', file.name));
    if (!encoded.preview) li.prepend(el('span', 'who', 'image'));
    await send({ image_upload: encoded.base64 });
  }

  // "Chat about this tile" on every search result (rows map.js lists; change pairs are not single tiles).
  const results = $('results');
  function addChatButton(li) {
    if (!(li instanceof HTMLLIElement) || !li.dataset.tileId || li.classList.contains('change') || li.querySelector('button.chat-about')) return;
    const button = el('button', 'chat-about', 'Chat about this tile');
    button.type = 'button';
    button.title = 'Add this tile to the chat as an image: the model describes it, then ask about it';
    button.addEventListener('click', (e) => { e.stopPropagation(); chatAboutTile(li.dataset.tileId); });
    (li.querySelector('button.similar')?.parentElement ?? li).append(button);
  }
  new MutationObserver((records) => { for (const r of records) r.addedNodes.forEach(addChatButton); })
    .observe(results, { childList: true });
  results.querySelectorAll('li').forEach(addChatButton);

  window.rscapretChat = { turns: () => turns.slice(), open: setOpen, chatAboutTile };   // for tests and the browser console
})();
