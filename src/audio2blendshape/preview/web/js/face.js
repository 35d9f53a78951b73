// The 3D view: one scene with one or two heads (A, and B for comparisons), lights, camera and orbit controls.
// A head is a loaded glTF/GLB/VRM (avatarload.js) whose morph targets are driven by an animation's curves
// (names.js).

import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { bindAvatar, shapeKey, vrmExpressions } from 'studio/names.js';
import { turnEyes } from 'studio/defaulthead.js';

// The value of column `col` of `anim` at time `t` (s): linear between frames k / fps, held at the ends.
export function valueAt(anim, col, t) {
  const n = anim.frames.length;
  if (!n) return 0;
  const f = Math.max(0, t * anim.fps);
  const i = Math.min(n - 1, Math.floor(f + 1e-9));
  const j = Math.min(n - 1, i + 1);
  const frac = Math.min(1, Math.max(0, f - i));
  return anim.frames[i][col] * (1 - frac) + anim.frames[j][col] * frac;
}

export class Head {
  constructor(gltf, label) {
    this.gltf = gltf;
    this.label = label;
    this.root = new THREE.Group();
    this.root.add(gltf.scene);
    const { expressions, isVrm0 } = vrmExpressions(gltf);
    this.expressions = expressions;
    if (isVrm0) gltf.scene.rotation.y = Math.PI;  // VRM 0.x avatars face -Z
    this.binding = null;
  }

  clone(label) {
    const copy = Object.create(Head.prototype);
    copy.gltf = this.gltf;
    copy.label = label;
    copy.root = this.root.clone(true);  // meshes share geometry, each keeps its own influences
    const map = new Map();
    const originals = []; this.root.traverse((o) => originals.push(o));
    const clones = []; copy.root.traverse((o) => clones.push(o));
    originals.forEach((o, i) => map.set(o, clones[i]));
    copy.expressions = this.expressions.map((e) => ({ ...e, binds: e.binds.map((b) => ({ ...b, mesh: map.get(b.mesh) })) }));
    copy.binding = null;
    return copy;
  }

  bind(names) {
    this.columns = new Map(names.map((name, i) => [shapeKey(name), i]));
    this.binding = bindAvatar(this.root, names, this.expressions);
    return this.binding;
  }

  // Set every bound morph target from the animation at time t; unbound targets stay at 0.
  apply(anim, t) {
    if (!this.binding) return;
    this.root.traverse((o) => { if (o.isMesh && o.morphTargetInfluences) o.morphTargetInfluences.fill(0); });
    for (const b of this.binding.bindings) {
      const value = b.weight * valueAt(anim, b.column, t);
      b.mesh.morphTargetInfluences[b.index] = Math.min(1, b.mesh.morphTargetInfluences[b.index] + value);
    }
    turnEyes(this.root, (name) => {
      const col = this.columns.get(shapeKey(name));
      return col === undefined ? 0 : valueAt(anim, col, t);
    });
  }

  // Each morph target's influence by name (first mesh that has it), read back from three's meshes.
  influences() {
    const out = {};
    this.root.traverse((o) => {
      if (!o.isMesh || !o.morphTargetDictionary) return;
      for (const [name, index] of Object.entries(o.morphTargetDictionary)) {
        if (!(name in out)) out[name] = o.morphTargetInfluences[index];
      }
    });
    return out;
  }

  // The box of the meshes that carry bound morph targets (the face), or of everything.
  faceBox() {
    const box = new THREE.Box3();
    this.root.updateMatrixWorld(true);
    const faces = new Set((this.binding?.bindings ?? []).map((b) => b.mesh));
    this.root.traverse((o) => { if (o.isMesh && (!faces.size || faces.has(o))) box.expandByObject(o); });
    if (box.getSize(new THREE.Vector3()).y > 0.6) box.min.y = box.max.y - 0.3;  // a whole body: its head
    return box;
  }
}

export class Stage {
  constructor(canvas) {
    this.canvas = canvas;
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(2, window.devicePixelRatio || 1));
    this.renderer.outputColorSpace = THREE.SRGBColorSpace;
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(0x24272e);
    this.camera = new THREE.PerspectiveCamera(22, 1, 0.01, 100);
    this.scene.add(new THREE.HemisphereLight(0xfff4ea, 0x3a3230, 1.4));
    const key = new THREE.DirectionalLight(0xffffff, 2.2);
    key.position.set(0.6, 0.8, 1.2);
    const fill = new THREE.DirectionalLight(0xdfe8ff, 0.8);
    fill.position.set(-0.9, 0.1, 0.8);
    const rim = new THREE.DirectionalLight(0xffffff, 0.7);
    rim.position.set(0, 0.5, -1);
    this.scene.add(key, fill, rim);
    this.controls = new OrbitControls(this.camera, canvas);
    this.controls.addEventListener('change', () => this.render());
    this.heads = [];
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  setHeads(heads) {
    for (const h of this.heads) this.scene.remove(h.root);
    this.heads = heads;
    const boxes = heads.map((h) => { h.root.position.set(0, 0, 0); return h.faceBox(); });
    const width = boxes.length ? boxes[0].getSize(new THREE.Vector3()).x : 0.25;
    heads.forEach((h, i) => {
      h.root.position.x = heads.length > 1 ? (i === 0 ? -0.6 : 0.6) * width : 0;
      this.scene.add(h.root);
    });
    this.frame();
  }

  frame() {
    const box = new THREE.Box3();
    for (const h of this.heads) box.union(h.faceBox());
    if (box.isEmpty()) return;
    const size = box.getSize(new THREE.Vector3());
    const centre = box.getCenter(new THREE.Vector3());
    centre.y += size.y * 0.06;  // the face (brows to chin), not the neck
    const aspect = this.camera.aspect || 1;
    const fov = THREE.MathUtils.degToRad(this.camera.fov);
    const perHead = size.x / this.heads.length;
    const fit = Math.max(size.y * 0.36, (size.x * 0.5 + perHead * 0.05) / aspect) / Math.tan(fov / 2);
    // From a little above, as a person across a table sees a face: the lower teeth and tongue show.
    this.camera.position.set(centre.x, centre.y + fit * 0.12, box.max.z + fit);
    this.controls.target.copy(centre);
    this.controls.update();
  }

  resize() {
    const { clientWidth: w, clientHeight: h } = this.canvas;
    if (!w || !h || (w === this.size?.[0] && h === this.size?.[1])) return;
    this.size = [w, h];
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.frame();
    this.render();
  }

  render() {
    this.renderer.render(this.scene, this.camera);
  }

  // The on-screen rectangle (CSS pixels, relative to the canvas) of a head's meshes whose material name
  // matches `pattern` (the default head's mouth: its teeth), for tests and screenshots.
  screenRect(head, pattern) {
    head.root.updateMatrixWorld(true);
    const xs = [], ys = [];
    const v = new THREE.Vector3();
    head.root.traverse((o) => {
      if (!o.isMesh || !pattern.test(o.material?.name ?? '')) return;
      const position = o.geometry.attributes.position;
      const used = new Set(o.geometry.index ? o.geometry.index.array : position.array.keys());
      for (const i of used) {  // the primitive's own vertices: the glTF primitives share one vertex array
        v.fromBufferAttribute(position, i).applyMatrix4(o.matrixWorld).project(this.camera);
        xs.push((v.x + 1) / 2 * this.canvas.clientWidth);
        ys.push((1 - v.y) / 2 * this.canvas.clientHeight);
      }
    });
    if (!xs.length) return null;
    return { left: Math.min(...xs), top: Math.min(...ys), right: Math.max(...xs), bottom: Math.max(...ys) };
  }
}
