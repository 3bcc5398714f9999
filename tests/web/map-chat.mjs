// Issue 34 on the map page in headless Chromium (Debian's): the chat panel. At 1400x900: open it, ask "show me a
// farm", see the model's answer in the transcript; search, "Chat about this tile" on a result (an image turn the model
// describes), ask about it (the page sends the conversation back with the description), add an uploaded image, then
// drop one on the panel (it joins the conversation; no image search starts); a retrieved tile, when the model retrieved, selects its footprint on the map. At 390x844 (a phone): "Chat" under
// "Tools", the same question answered. No console errors, no 4xx/5xx answers anywhere.
//   node tests/web/map-chat.mjs <baseUrl> <screenshotPrefix> <uploadImage> [retrieves]
// With "retrieves" (a model that answers "show me a farm" with [RET]) the first answer must list tiles, and a click on
// one must select its footprint on the map.
// Screenshots: <prefix>-1400.png, <prefix>-390.png. Prints one JSON line of facts (MapPageChatTests.cs checks them) or exits 1.
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [baseUrl, prefix, uploadImage, mode] = process.argv.slice(2);
const mustRetrieve = mode === 'retrieves';
if (!uploadImage) { console.error('usage: node map-chat.mjs <baseUrl> <screenshotPrefix> <uploadImage>'); process.exit(2); }
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
let step = '';
const at = (name) => { step = name; };
function check(condition, message) { if (!condition) throw new Error('check failed: ' + message); }

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
const problems = [];
const facts = {};
const chatBodies = [];

async function openPage(width, height, label) {
  const page = await browser.newPage({ viewport: { width, height }, deviceScaleFactor: 1 });
  page.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`${label}: console: ${m.text()}`); });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${label}: HTTP ${r.status()} for ${r.url()}`); });
  page.on('request', (r) => {
    if (r.url().endsWith('/api/chat')) chatBodies.push(JSON.parse(r.postData() ?? '{}'));
    if (r.url().includes('/api/search/image')) facts.imageSearches = (facts.imageSearches ?? 0) + 1;
  });
  await page.goto(baseUrl + '/');
  await page.waitForFunction(() => window.rscapretMap && window.rscapretChat);
  return page;
}

// Sends with 'act' and waits for /api/chat's answer and its bubble; returns the answer's body.
async function chat(page, act) {
  const answers = await page.locator('#chatTranscript .chat-model:not(.pending)').count();
  const [response] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/api/chat'), { timeout: 120000 }), act()]);
  const body = await response.json();
  check(response.status() === 200, `/api/chat answered ${response.status()}: ${JSON.stringify(body)}`);
  await page.waitForFunction((n) => document.querySelectorAll('#chatTranscript .chat-model:not(.pending)').length > n, answers);
  return body;
}

async function ask(page, text) {
  await page.fill('#chatInput', text);
  return chat(page, () => page.click('#chatSend'));
}

async function imageryLoaded(page) {
  await page.waitForFunction(() => [...document.querySelectorAll('img')].every((t) => t.complete), null, { timeout: 20000 }).catch(() => {});
}

try {
  at('desktop: open');
  const page = await openPage(1400, 900, '1400');
  check(await page.isHidden('#chatPanel'), 'the chat panel is open before it is asked for');
  await page.click('#chatToggle');
  await page.waitForSelector('#chatPanel', { state: 'visible' });
  facts.panelBox = await page.locator('#chatPanel').boundingBox();

  at('desktop: ask');
  const first = await ask(page, 'show me a farm');
  facts.firstRetrieved = first.retrieved;
  facts.firstTiles = first.tiles.length;
  facts.userBubble = await page.textContent('#chatTranscript .chat-user');
  facts.firstReply = await page.textContent('#chatTranscript .chat-model:not(.pending)');
  check(facts.firstReply.startsWith('model'), 'no model reply in the transcript: ' + facts.firstReply);
  facts.transcriptTiles = await page.locator('#chatTranscript .chat-tiles li').count();
  check(facts.transcriptTiles === (first.retrieved ? first.tiles.length : 0), `${facts.transcriptTiles} tiles listed for ${first.tiles.length} retrieved`);
  if (mustRetrieve) check(first.retrieved && facts.transcriptTiles === 3, `the model did not retrieve 3 tiles: ${JSON.stringify(first)}`);
  if (facts.transcriptTiles > 0) {
    await page.click('#chatTranscript .chat-tiles li >> nth=0');
    await page.waitForSelector('path.chat-selected');
    facts.selectedOnMap = await page.locator('path.chat-selected').count();
  }

  at('desktop: chat about a tile');
  await page.fill('#q', 'a farm');
  await page.fill('#k', '3');
  await page.click('#search button[type=submit]');
  await page.waitForSelector('#results li button.chat-about');
  facts.chatButtons = await page.locator('#results li button.chat-about').count();
  const tileId = Number(await page.getAttribute('#results li >> nth=0', 'data-tile-id'));
  const described = await chat(page, () => page.click('#results li >> nth=0 >> button.chat-about'));
  check(typeof described.description === 'string', 'an image turn without a description');
  facts.imageBubbles = await page.locator('#chatTranscript .chat-image img').count();
  const followUp = await ask(page, 'what is in this image?');
  check(typeof followUp.text === 'string', 'no text for the follow-up');
  // The follow-up carried the conversation: the first exchange, the tile with its description, the question.
  const sent = chatBodies[chatBodies.length - 1].turns;
  facts.followUpTurns = sent.map((t) => Object.keys(t).filter((k) => ['user', 'model', 'image_tile', 'image_upload'].includes(k))[0]);
  const imageTurn = sent.find((t) => t.image_tile === tileId);
  check(imageTurn && imageTurn.description === described.description, 'the tile turn was not sent back with its description: ' + JSON.stringify(sent));

  at('desktop: upload');
  await chat(page, () => page.setInputFiles('#chatImage', uploadImage));
  const uploadTurn = chatBodies[chatBodies.length - 1].turns.at(-1);
  check(typeof uploadTurn.image_upload === 'string' && uploadTurn.image_upload.length > 100, 'the upload was not sent as base64');
  facts.imageBubbles = await page.locator('#chatTranscript .chat-image img').count();
  facts.transcriptItems = await page.locator('#chatTranscript > li').count();
  // A caption-only model's note: once per conversation, however many answers.
  facts.notes = await page.locator('#chatTranscript .chat-note').count();
  facts.noteText = facts.notes > 0 ? await page.textContent('#chatTranscript .chat-note') : null;
  facts.desktopTurns = (await page.evaluate(() => window.rscapretChat.turns())).length;

  at('desktop: drop an image on the panel');
  const dropped = await page.evaluateHandle((b64) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'dropped.png', { type: 'image/png' }));
    return transfer;
  }, readFileSync(uploadImage).toString('base64'));
  const addressBefore = page.url();
  await page.dispatchEvent('#chatTranscript', 'dragenter', { dataTransfer: dropped });
  facts.panelOutlinedWhileDragging = await page.evaluate(() => document.body.classList.contains('dropping'));
  await chat(page, () => page.dispatchEvent('#chatTranscript', 'drop', { dataTransfer: dropped }));
  const dropTurn = chatBodies[chatBodies.length - 1].turns.at(-1);
  check(typeof dropTurn.image_upload === 'string' && dropTurn.image_upload.length > 100, 'the dropped image was not sent as base64');
  check(page.url() === addressBefore, 'the drop navigated away: ' + page.url());
  facts.outlineAfterDrop = await page.evaluate(() => document.body.classList.contains('dropping'));
  facts.afterDropTurns = (await page.evaluate(() => window.rscapretChat.turns())).length;
  facts.imageSearchesAfterDrop = facts.imageSearches ?? 0;
  await imageryLoaded(page);
  await page.screenshot({ path: `${prefix}-1400.png` });
  await page.close();

  at('phone');
  const phone = await openPage(390, 844, '390');
  check(await phone.isHidden('#chatToggle'), 'Chat is in the phone toolbar outside Tools');
  await phone.click('#toolsToggle');
  await phone.click('#chatToggle');
  await phone.waitForSelector('#chatPanel', { state: 'visible' });
  const phoneAnswer = await ask(phone, 'show me a farm');
  facts.phoneRetrieved = phoneAnswer.retrieved;
  facts.phoneReply = await phone.textContent('#chatTranscript .chat-model:not(.pending)');
  facts.phonePanelBox = await phone.locator('#chatPanel').boundingBox();
  facts.phoneMapBox = await phone.locator('#map').boundingBox();
  // The panel lies within the screen's width and leaves the top of the map visible.
  check(facts.phonePanelBox.x >= 0 && facts.phonePanelBox.x + facts.phonePanelBox.width <= 391, 'the panel is wider than the phone');
  check(facts.phonePanelBox.y > facts.phoneMapBox.y + 100, 'the panel covers the map');
  await imageryLoaded(phone);
  await phone.screenshot({ path: `${prefix}-390.png` });
  await phone.close();

  check(problems.length === 0, problems.join('\n'));
  console.log(JSON.stringify(facts));
} catch (e) {
  console.error(`map-chat.mjs: ${step}: ${e.message}`);
  if (problems.length) console.error(problems.join('\n'));
  await browser.close();
  process.exit(1);
}
await browser.close();
