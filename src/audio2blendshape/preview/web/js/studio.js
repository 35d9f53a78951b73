// The studio page: clips and models from the local server (or one take embedded in a standalone file),
// audio played in sync with one or two heads, the timeline, avatars, exports. `window.studio` exposes the
// page's state for tests and for curious users (open the console: studio.state()).

import { Stage, Head, valueAt } from 'studio/face.js';
import { parseAvatar, MODEL_FILE, RESOURCE_FILE } from 'studio/avatarload.js';
import { dressDefaultHead } from 'studio/defaulthead.js';
import { Timeline } from 'studio/timeline.js';

const $ = (id) => document.getElementById(id);
const embed = window.STUDIO_EMBED ?? null;
const audio = $('audio');
const app = { a: null, b: null, labelA: '', labelB: '', clip: null, time: 0, playing: false, loop: null,
  avatar: null, headB: null, avatarName: 'default head (ICT-FaceKit)', records: 0 };
const stage = new Stage($('stage'));
const timeline = new Timeline($('timeline'), { onSeek: seek, onLoop: setLoop });

const status = (text) => { $('status').textContent = text; };
const fail = (error) => { console.error(error); status(`error: ${error.message ?? error}`); };

function base64Buffer(text) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return bytes.buffer;
}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ?? response.statusText);
  return body;
}

function heads() {
  return stage.heads;
}

function rebuildHeads() {
  if (!app.avatar || !app.a) return;
  const list = [app.avatar];
  app.avatar.bind(app.a.names);
  if (app.b) {
    app.headB = app.headB ?? app.avatar.clone('B');
    app.headB.bind(app.b.names);
    list.push(app.headB);
  }
  stage.setHeads(list);
  const missing = app.avatar.binding.missing;
  $('missing').textContent = missing.length
    ? `${app.avatarName} lacks ${missing.length} of the ${app.a.names.length} shapes: ${missing.join(', ')}`
    : `${app.avatarName}: all ${app.a.names.length} shapes bound`;
  for (const [id, text] of [['label-a', `A: ${app.labelA}`], ['label-b', app.b ? `B: ${app.labelB}` : '']]) {
    $(id).textContent = text;
    $(id).style.display = app.b ? 'block' : 'none';
  }
  applyAt(app.time);
}

function applyAt(t) {
  const [headA, headB] = heads();
  if (headA && app.a) headA.apply(app.a, t);
  if (headB && app.b) headB.apply(app.b, t);
  stage.render();
  timeline.time = t;
  timeline.draw();
  $('clock').textContent = `${t.toFixed(2)} / ${timeline.duration.toFixed(2)} s`;
}

function seek(t) {
  app.time = Math.min(Math.max(0, t), timeline.duration);
  if (audio.src) audio.currentTime = app.time;  // before the audio has loaded, this is where it will start
  applyAt(app.time);
}

function setLoop(range) {
  app.loop = range[1] - range[0] > 0.05 ? range : null;
  timeline.loop = app.loop;
  $('loop').checked = Boolean(app.loop);
  timeline.draw();
}

function tick() {
  if (app.playing) {
    let t = audio.currentTime;
    if ($('loop').checked && app.loop && t >= app.loop[1]) { audio.currentTime = app.loop[0]; t = app.loop[0]; }
    app.time = t;
    applyAt(t);
  }
  requestAnimationFrame(tick);
}

async function play() {
  if (app.playing) { audio.pause(); return; }
  if ($('loop').checked && app.loop && (app.time < app.loop[0] || app.time >= app.loop[1])) seek(app.loop[0]);
  audio.playbackRate = Number($('speed').value);
  if (Math.abs(audio.currentTime - app.time) > 0.02) audio.currentTime = app.time;
  try { await audio.play(); } catch (error) { fail(error); }
}
audio.addEventListener('play', () => { app.playing = true; $('play').textContent = '❚❚ pause'; });
audio.addEventListener('pause', () => { app.playing = false; $('play').textContent = '▶ play'; });

function showAnimations() {
  timeline.setData(app.a, app.b);
  const shapeSelect = $('shape');
  shapeSelect.replaceChildren(new Option('(the group)', ''), ...(app.a?.names ?? []).map((n) => new Option(n, n)));
  timeline.select($('group').value, '');
  rebuildHeads();
}

// `files`: what was picked or dropped with the avatar (a .gltf's buffers and textures).
async function setAvatar(buffer, name, isDefault = false, files = []) {
  const gltf = await parseAvatar(buffer, name, files);
  if (isDefault) dressDefaultHead(gltf);
  app.avatar = new Head(gltf, 'A');
  app.avatarName = name;
  app.headB = null;
  rebuildHeads();
}

// The avatar among picked or dropped files (the first .glb/.gltf/.vrm), with the files it may refer to.
async function avatarFrom(files) {
  const model = files.find((file) => MODEL_FILE.test(file.name));
  if (!model) {
    status(`${files.map((f) => f.name).join(', ')}: no .glb, .gltf or .vrm among them`);
    return;
  }
  status(`loading ${model.name}…`);
  await setAvatar(await model.arrayBuffer(), model.name, false, files.filter((file) => file !== model));
  status(`avatar: ${model.name}`);
}

// ----------------------------------------------------------------------------- with the local server

const query = (model) => `clip=${encodeURIComponent(app.clip)}&model=${encodeURIComponent(model)}`;

async function loadB() {
  const model = $('model-b').value;
  app.b = model ? await api(`/api/animation?${query(model)}`) : null;
  app.labelB = $('model-b').selectedOptions[0]?.textContent ?? '';
  app.headB = null;
  showAnimations();
}

// The clip's WAV, fetched whole into a blob: URL. Chromium seeks an HTTP resource only where the server
// answers range requests; a blob can always be sought, so a click on the timeline moves the sound too.
async function audioUrl(id) {
  const response = await fetch(`/api/audio/${encodeURIComponent(id)}.wav`);
  if (!response.ok) throw new Error(`the audio of clip ${id}: ${response.status} ${response.statusText}`);
  return URL.createObjectURL(await response.blob());
}

async function selectClip(id) {
  app.clip = id;
  $('clip').value = id;
  status('animating…');
  const [wav, animation] = await Promise.all([audioUrl(id), api(`/api/animation?${query($('model-a').value)}`)]);
  if (audio.src.startsWith('blob:')) URL.revokeObjectURL(audio.src);
  audio.src = wav;
  app.a = animation;
  app.labelA = $('model-a').value;
  await loadB();
  seek(0);
  status(`${$('clip').selectedOptions[0].textContent}: ${app.a.duration.toFixed(2)} s, ${app.a.fps} fps`);
}

async function upload(blob, name) {
  const clip = await api(`/api/upload?name=${encodeURIComponent(name)}`, { method: 'POST', body: blob });
  $('clip').add(new Option(`${clip.name} (${clip.duration.toFixed(1)} s)`, clip.id));
  await selectClip(clip.id);
}

function wavBytes(buffer) {  // 16-bit PCM WAV of an AudioBuffer's first channel: the recording's upload
  const samples = buffer.getChannelData(0);
  const view = new DataView(new ArrayBuffer(44 + 2 * samples.length));
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, 'RIFF'); view.setUint32(4, 36 + 2 * samples.length, true); text(8, 'WAVEfmt ');
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, buffer.sampleRate, true); view.setUint32(28, 2 * buffer.sampleRate, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true); text(36, 'data'); view.setUint32(40, 2 * samples.length, true);
  samples.forEach((v, i) => view.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, v)) * 32767, true));
  return new Blob([view], { type: 'audio/wav' });
}

let recorder = null;
let dropServerFiles = null;  // what becomes of dropped audio and CSV files; only with the server
async function record() {
  if (recorder) { recorder.stop(); return; }
  // Browsers offer the microphone to secure pages only: http://127.0.0.1 or localhost, not http://<address>.
  if (!navigator.mediaDevices) throw new Error('recording needs the page opened at 127.0.0.1 or localhost');
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true }).catch((error) => {
    throw new Error(`no microphone (${error.name}: ${error.message})`);
  });
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((track) => track.stop());
    recorder = null;
    $('record').classList.remove('recording'); $('record').textContent = '● record';
    const context = new AudioContext();
    try {
      const decoded = await context.decodeAudioData(await new Blob(chunks).arrayBuffer());
      app.records += 1;
      await upload(wavBytes(decoded), `recording-${app.records}.wav`);
    } catch (error) { fail(error); } finally { context.close(); }
  };
  recorder.start();
  $('record').classList.add('recording'); $('record').textContent = '■ stop';
}

function download(href, name) {
  const link = Object.assign(document.createElement('a'), { href, download: name });
  document.body.append(link); link.click(); link.remove();
}

async function addCapture(file) {
  const capture = await api(`/api/capture?name=${encodeURIComponent(file.name)}`, { method: 'POST', body: file }).catch(fail);
  if (!capture) return;
  $('model-b').add(new Option(`capture: ${file.name}`, capture.id));
  $('model-b').value = capture.id;
  await loadB().catch(fail);
}

async function startServer() {
  const info = await api('/api/info');
  for (const select of [$('model-a'), $('model-b')]) for (const m of info.models) select.add(new Option(m, m));
  for (const c of info.clips) $('clip').add(new Option(`${c.name} (${c.duration.toFixed(1)} s)`, c.id));
  $('clip').onchange = () => selectClip($('clip').value).catch(fail);
  $('model-a').onchange = () => app.clip && selectClip(app.clip).catch(fail);
  $('model-b').onchange = () => app.clip && loadB().catch(fail);
  $('audio-file').onchange = async (event) => {
    for (const file of event.target.files) await upload(file, file.name).catch(fail);
  };
  $('record').onclick = () => record().catch(fail);
  $('capture-file').onchange = (event) => addCapture(event.target.files[0]);
  dropServerFiles = async (files) => {  // audio is animated, a .csv becomes B
    for (const file of files) {
      if (/\.csv$/i.test(file.name)) await addCapture(file);
      else await upload(file, file.name).catch(fail);
    }
  };
  for (const button of document.querySelectorAll('[data-export]')) {
    button.onclick = () => app.clip && download(`/api/export?${query($('model-a').value)}&format=${button.dataset.export}`, '');
  }
  const head = await (await fetch('head/ict_face_arkit.glb')).arrayBuffer();
  await setAvatar(head, app.avatarName, true);
  if (info.clips.length) await selectClip(info.clips[0].id);
  else status('add an audio file, or record one');
}

// ----------------------------------------------------------------------------- a standalone take

async function startEmbedded() {
  document.body.classList.add('embedded');
  document.title = `${embed.title} · audio2blendshape`;
  audio.src = embed.audio;
  app.a = embed.animation;
  app.labelA = embed.title;
  await setAvatar(base64Buffer(embed.head), app.avatarName, true);
  showAnimations();
  seek(0);
  status(`${embed.title}: ${app.a.duration.toFixed(2)} s, ${app.a.fps} fps`);
  $('export-json').onclick = () => {  // the JSON writer's layout (runtime/writers.py), from the page
    const lines = app.a.frames.map((f) => `[${f.map((v) => v.toFixed(6)).join(',')}]`);
    const text = `{"names": ${JSON.stringify(app.a.names)}, "fps": ${app.a.fps}, "duration": ${app.a.duration},\n"frames": [\n${lines.join(',\n')}\n]}\n`;
    download(URL.createObjectURL(new Blob([text], { type: 'application/json' })), `${embed.title}.json`);
  };
}

// ----------------------------------------------------------------------------- both

$('play').onclick = () => play().catch(fail);
$('speed').onchange = () => { audio.playbackRate = Number($('speed').value); };
$('group').onchange = () => { $('shape').value = ''; timeline.select($('group').value, ''); };
$('shape').onchange = () => timeline.select($('group').value, $('shape').value);
$('avatar-file').onchange = async (event) => {
  const files = [...event.target.files];
  event.target.value = '';  // picking the same file again loads it again
  if (files.length) await avatarFrom(files).catch(fail);
};
// Files dropped anywhere on the page: a .glb/.gltf/.vrm (with a .gltf's own files) becomes the avatar; with
// the server, audio files are animated and a .csv becomes B.
document.addEventListener('dragover', (event) => event.preventDefault());
document.addEventListener('drop', async (event) => {
  event.preventDefault();
  const files = [...(event.dataTransfer?.files ?? [])];
  const avatar = files.filter((file) => MODEL_FILE.test(file.name) || RESOURCE_FILE.test(file.name));
  const rest = files.filter((file) => !avatar.includes(file));
  if (avatar.length) await avatarFrom(avatar).catch(fail);
  if (rest.length && dropServerFiles) await dropServerFiles(rest);
  else if (rest.length) status(`${rest.map((f) => f.name).join(', ')}: only an avatar can be dropped on a saved take`);
});
document.addEventListener('keydown', (event) => {
  if (event.code === 'Space' && event.target === document.body) { event.preventDefault(); play().catch(fail); }
});

window.studio = {
  ready: false,
  seek,
  play,
  loop: setLoop,
  setAvatar,
  setB: async (model) => { $('model-b').value = model; await loadB(); },
  stage,
  rect: (index, pattern = 'teeth') => stage.screenRect(heads()[index], new RegExp(pattern, 'i')),
  state() {
    const t = app.time;
    const [headA, headB] = heads();
    const values = (anim) => Object.fromEntries((anim?.names ?? []).map((n, i) => [n, valueAt(anim, i, t)]));
    const pairs = (head) => [...new Map((head?.binding?.bindings ?? []).map((b) => [b.target, head === headA ? app.a.names[b.column] : app.b.names[b.column]]))];
    return { time: t, duration: timeline.duration, playing: app.playing, ab: Boolean(headB), clip: app.clip,
      values: values(app.a), valuesB: values(app.b), influences: headA?.influences() ?? {}, influencesB: headB?.influences() ?? {},
      bound: pairs(headA), boundB: pairs(headB), missing: headA?.binding?.missing ?? [], avatar: app.avatarName,
      labels: [app.labelA, app.b ? app.labelB : null], loop: app.loop, looping: $('loop').checked,
      clips: [...$('clip').options].map((o) => [o.value, o.textContent]), status: $('status').textContent };
  },
};

requestAnimationFrame(tick);
(embed ? startEmbedded() : startServer())
  .then(() => { window.studio.ready = true; })
  .catch((error) => { window.studio.error = String(error); fail(error); });
