// Dressing the bundled ICT-FaceKit head, which ships plain colours and no textures, so that it reads as a
// face: painted irises, eyeballs that turn with the eyeLook curves (its eyeLook shapes move only the lids),
// soft lashes (the lash cards are drawn without their alpha texture), a darker mouth with a dark throat.

import * as THREE from 'three';

const SKIN = 0xd9a88f, GUMS = 0x74303a;
const LOOK_YAW = THREE.MathUtils.degToRad(32);  // eyeLookIn/Out = 1 turns the eyeball this far
const LOOK_PITCH = THREE.MathUtils.degToRad(24);  // eyeLookUp/Down = 1

function usedVertices(mesh) {
  const position = mesh.geometry.attributes.position;
  return [...new Set(mesh.geometry.index ? mesh.geometry.index.array : position.array.keys())];
}

function centreOf(meshes) {
  const box = new THREE.Box3();
  const v = new THREE.Vector3();
  for (const mesh of meshes) {
    for (const i of usedVertices(mesh)) box.expandByPoint(v.fromBufferAttribute(mesh.geometry.attributes.position, i));
  }
  return box.getCenter(new THREE.Vector3());
}

// Colour the outer eyeball's vertices by their angle from the eye's axis (+Z): pupil, iris, limbus, white.
function paintEye(mesh, centre) {
  const position = mesh.geometry.attributes.position;
  const colours = new Float32Array(position.count * 3).fill(1);
  const iris = new THREE.Color(0x4f6f8c), pupil = new THREE.Color(0x0a0a0c), limbus = new THREE.Color(0x1d2833);
  const white = new THREE.Color(0xeee9e2);
  const v = new THREE.Vector3();
  for (const i of usedVertices(mesh)) {
    v.fromBufferAttribute(position, i).sub(centre);
    const angle = THREE.MathUtils.radToDeg(Math.acos(v.z / v.length()));
    const colour = angle < 8 ? pupil : angle < 24 ? iris.clone().lerp(limbus, Math.max(0, (angle - 16) / 8)) : white;
    colour.toArray(colours, 3 * i);
  }
  mesh.geometry.setAttribute('color', new THREE.BufferAttribute(colours, 3));
  mesh.material = mesh.material.clone();
  Object.assign(mesh.material, { vertexColors: true, roughness: 0.2 });
  mesh.material.color.set(0xffffff);
}

// Put the eyeball meshes of one side under a pivot at the eyeball's centre, named eyePivotLeft/Right.
function eyePivot(scene, side) {
  const meshes = [];
  scene.traverse((o) => { if (o.isMesh && new RegExp(`(sclera|iris)${side}`, 'i').test(o.material?.name ?? '')) meshes.push(o); });
  if (!meshes.length) return;
  const centre = centreOf(meshes);
  const pivot = new THREE.Group();
  pivot.name = `eyePivot${side}`;
  pivot.position.copy(centre);
  meshes[0].parent.add(pivot);
  for (const mesh of meshes) {
    pivot.add(mesh);
    mesh.position.sub(centre);
    if (/sclera/i.test(mesh.material.name)) paintEye(mesh, centre);
  }
}

export function dressDefaultHead(gltf) {
  const scene = gltf.scene;
  const recolour = [];
  scene.traverse((o) => { if (o.isMesh) recolour.push(o); });
  for (const mesh of recolour) {
    const name = mesh.material?.name ?? '';
    if (/Face|BackHead/.test(name)) mesh.material.color.set(SKIN);
    if (/Gums/.test(name)) mesh.material.color.set(GUMS);
    if (/Lashes/.test(name)) Object.assign(mesh.material, { transparent: true, opacity: 0.4, depthWrite: false });
  }
  eyePivot(scene, 'Left');
  eyePivot(scene, 'Right');
  const throat = new THREE.Mesh(new THREE.SphereGeometry(0.024, 24, 16), new THREE.MeshBasicMaterial({ color: 0x1a0c0c }));
  throat.name = 'throat';
  throat.position.set(0, -0.036, 0.045);
  scene.add(throat);
}

// Turn the eyeballs (pivots made above) from the eyeLook curves; `value(name)` gives a curve's value.
export function turnEyes(root, value) {
  for (const [side, outSign] of [['Left', 1], ['Right', -1]]) {
    const pivot = root.getObjectByName(`eyePivot${side}`);
    if (!pivot) continue;
    const yaw = (value(`eyeLookOut${side}`) - value(`eyeLookIn${side}`)) * outSign * LOOK_YAW;
    const pitch = (value(`eyeLookDown${side}`) - value(`eyeLookUp${side}`)) * LOOK_PITCH;
    pivot.rotation.set(pitch, yaw, 0);
  }
}
