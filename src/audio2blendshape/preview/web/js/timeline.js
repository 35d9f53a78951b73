// The timeline: curves of the selected group or shape (A solid, B dashed), the playhead, the loop range.
// Click or drag to scrub; shift-drag to select a range to loop.

import { valueAt } from 'studio/face.js';

export const GROUPS = {
  jaw: (n) => /^jaw/i.test(n),
  lips: (n) => /^mouth/i.test(n),
  brows: (n) => /^brow/i.test(n),
  eyes: (n) => /^eye/i.test(n),
  cheeks: (n) => /^(cheek|nose)/i.test(n),
  tongue: (n) => /^tongue/i.test(n),
  all: () => true,
};
const COLOURS = ['#ff8a65', '#4fc3f7', '#aed581', '#ffd54f', '#ba68c8', '#f06292', '#4db6ac', '#90a4ae',
  '#e57373', '#7986cb', '#dce775', '#a1887f'];

export class Timeline {
  constructor(canvas, { onSeek, onLoop }) {
    this.canvas = canvas;
    this.onSeek = onSeek;
    this.onLoop = onLoop;
    this.a = null; this.b = null;
    this.shapes = [];
    this.time = 0; this.duration = 1;
    this.loop = null;
    let dragFrom = null;
    const timeOf = (event) => {
      const rect = canvas.getBoundingClientRect();
      return Math.min(this.duration, Math.max(0, (event.clientX - rect.left) / rect.width * this.duration));
    };
    canvas.addEventListener('pointerdown', (event) => {
      canvas.setPointerCapture(event.pointerId);
      dragFrom = { t: timeOf(event), shift: event.shiftKey };
      if (!dragFrom.shift) this.onSeek(dragFrom.t);
    });
    canvas.addEventListener('pointermove', (event) => {
      if (!dragFrom) return;
      const t = timeOf(event);
      if (dragFrom.shift) this.onLoop([Math.min(dragFrom.t, t), Math.max(dragFrom.t, t)]);
      else this.onSeek(t);
    });
    canvas.addEventListener('pointerup', () => { dragFrom = null; });
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  setData(a, b) {
    this.a = a; this.b = b;
    this.duration = Math.max(a?.duration ?? 0, b?.duration ?? 0) || 1;
    this.draw();
  }

  select(group, shape) {
    const names = this.a?.names ?? [];
    this.shapes = shape ? [shape] : names.filter(GROUPS[group] ?? GROUPS.all);
    this.draw();
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
    const g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.fillStyle = '#1b1d22'; g.fillRect(0, 0, w, h);
    const x = (t) => t / this.duration * w;
    const y = (v) => h - 14 - v * (h - 24);
    if (this.loop) { g.fillStyle = 'rgba(120,160,255,0.15)'; g.fillRect(x(this.loop[0]), 0, x(this.loop[1]) - x(this.loop[0]), h); }
    g.strokeStyle = '#30333b'; g.lineWidth = 1;
    for (let s = 0; s <= this.duration; s += this.duration > 30 ? 10 : 1) {
      g.beginPath(); g.moveTo(x(s), 0); g.lineTo(x(s), h); g.stroke();
      g.fillStyle = '#7a7f8a'; g.font = '10px sans-serif'; g.fillText(`${s}s`, x(s) + 2, h - 3);
    }
    this.shapes.forEach((name, i) => {
      const colour = COLOURS[i % COLOURS.length];
      for (const [anim, dash] of [[this.a, []], [this.b, [4, 3]]]) {
        const col = anim ? anim.names.indexOf(name) : -1;
        if (col < 0) continue;
        g.strokeStyle = colour; g.setLineDash(dash); g.lineWidth = 1.5; g.beginPath();
        const step = Math.max(1, Math.floor(anim.frames.length / w));
        for (let k = 0; k < anim.frames.length; k += step) {
          const px = x(k / anim.fps), py = y(anim.frames[k][col]);
          if (k === 0) g.moveTo(px, py); else g.lineTo(px, py);
        }
        g.stroke(); g.setLineDash([]);
      }
      g.fillStyle = colour; g.font = '11px sans-serif';
      const value = this.a ? valueAt(this.a, this.a.names.indexOf(name), this.time) : 0;
      g.fillText(`${name} ${value.toFixed(2)}`, 6 + 150 * Math.floor(i / 6), 14 + 13 * (i % 6));
    });
    g.strokeStyle = '#ffffff'; g.lineWidth = 1.5;
    g.beginPath(); g.moveTo(x(this.time), 0); g.lineTo(x(this.time), h); g.stroke();
  }
}
