// Reading an avatar file the user picked or dropped: glTF (JSON), GLB or VRM (a GLB), parsed by three's
// GLTFLoader in the page. A .gltf may keep its buffers and textures in files beside it; the browser hands the
// page only the files the user chose, so those must be picked (or dropped) together with it.

import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';

const GLB_MAGIC = 0x46546c67;  // 'glTF', little-endian
export const MODEL_FILE = /\.(glb|gltf|vrm)$/i;
export const RESOURCE_FILE = /\.(bin|png|jpe?g|webp|ktx2)$/i;  // what a .gltf keeps in files beside it

// The glTF JSON of a .gltf or of a GLB's first chunk, or null where it is neither (GLTFLoader then says why).
function gltfJson(buffer) {
  try {
    const view = new DataView(buffer);
    if (buffer.byteLength >= 20 && view.getUint32(0, true) === GLB_MAGIC) {
      return JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 20, view.getUint32(12, true))));
    }
    return JSON.parse(new TextDecoder().decode(buffer));
  } catch {
    return null;
  }
}

const baseName = (uri) => {
  let name = uri.split(/[?#]/)[0];
  try { name = decodeURIComponent(name); } catch { /* a stray '%': the name as written */ }
  return name.split(/[\\/]/).pop();
};

// The files a glTF refers to by URI (not data: URIs), each matched to one of `files` by its base name.
function externalFiles(json, name, files) {
  const byName = new Map(files.map((file) => [file.name.toLowerCase(), file]));
  const uris = [...(json?.buffers ?? []), ...(json?.images ?? [])]
    .map((entry) => entry.uri).filter((uri) => typeof uri === 'string' && !/^(data|blob):/i.test(uri));
  const found = new Map(), missing = [];
  for (const uri of new Set(uris)) {
    const file = byName.get(baseName(uri).toLowerCase());
    if (file) found.set(baseName(uri), file); else missing.push(baseName(uri));
  }
  if (missing.length) {
    const them = missing.length > 1 ? 'them' : 'it';
    throw new Error(`${name} keeps its data in ${missing.join(', ')}: pick or drop ${them} together with ` +
      `${name} (or use a .glb, which holds everything in one file)`);
  }
  return found;
}

// VRM 0.x exporters (UniVRM) name morph targets in each primitive's extras, which GLTFLoader does not read
// (it reads the mesh's): without this the targets would be called "0", "1", ...
function namePrimitiveTargets(gltf) {
  const meshDefs = gltf.parser.json.meshes ?? [];
  gltf.scene.traverse((object) => {
    const info = gltf.parser.associations.get(object);
    const def = info?.meshes === undefined ? null : meshDefs[info.meshes];
    if (!object.isMesh || !object.morphTargetInfluences || !def || Array.isArray(def.extras?.targetNames)) return;
    const names = def.primitives?.[info.primitives ?? 0]?.extras?.targetNames;
    if (!Array.isArray(names) || names.length !== object.morphTargetInfluences.length) return;
    object.morphTargetDictionary = Object.fromEntries(names.map((n, i) => [String(n), i]));
  });
}

// Parse an avatar: `buffer` is the model file's bytes, `name` its file name, `files` the other files picked
// with it (a .gltf's .bin and textures). Resolves to GLTFLoader's result.
export async function parseAvatar(buffer, name = 'avatar', files = []) {
  const found = externalFiles(gltfJson(buffer), name, files);
  const urls = new Map([...found].map(([base, file]) => [base.toLowerCase(), URL.createObjectURL(file)]));
  const manager = new THREE.LoadingManager();
  manager.setURLModifier((url) => (/^(data|blob):/i.test(url) ? url : urls.get(baseName(url).toLowerCase()) ?? url));
  try {
    const gltf = await new Promise((resolve, reject) => new GLTFLoader(manager).parse(buffer, '', resolve, reject));
    namePrimitiveTargets(gltf);
    return gltf;
  } finally {
    for (const url of urls.values()) URL.revokeObjectURL(url);
  }
}
