// Matching an avatar's morph targets to an animation's curve names (docs/studio.md, "Your own avatar").
//
// Both sides are reduced to a key and compared: the part after the last '.', ':' or '|' (exporters prefix
// "blendShape1.", "Face:"), a separated L/R suffix or prefix spelled out at the end ("eyeBlink_L" and
// "L_eyeBlink" -> "eyeBlinkLeft"), then lower case without separators. So jawOpen, JawOpen, jaw_open,
// blendShape1.jawOpen and the VRM "perfect sync" names (JawOpen, EyeBlinkLeft, ...) all match the ARKit
// name jawOpen. Curves of other rigs match the same way by their own names.

export function shapeKey(name) {
  let key = String(name).trim();
  key = key.split(/[.:|]/).pop();
  key = key.replace(/[_\-\s]([LR])$/i, (_, side) => (side.toUpperCase() === 'L' ? 'Left' : 'Right'));
  key = key.replace(/^([LR])[_\-\s](.+)$/i, (_, side, rest) => rest + (side.toUpperCase() === 'L' ? 'Left' : 'Right'));
  return key.toLowerCase().replace(/[^a-z0-9]/g, '');
}

// Bindings from one animation's columns to the morph targets of every mesh under `root`.
// `expressions`: optional [{name, alias, binds: [{mesh, index, weight}]}] (VRM expressions), used for the
// curves no morph target matches by name. Returns {bindings, matched, missing, unmatchedTargets}.
export function bindAvatar(root, names, expressions = []) {
  const column = new Map(names.map((name, i) => [shapeKey(name), i]));
  const bindings = [];
  const matched = new Set();
  const targetNames = new Set();
  const unmatchedTargets = new Set();
  root.traverse((object) => {
    if (!object.isMesh || !object.morphTargetDictionary) return;
    for (const [target, index] of Object.entries(object.morphTargetDictionary)) {
      targetNames.add(target);
      const col = column.get(shapeKey(target));
      if (col === undefined) { unmatchedTargets.add(target); continue; }
      bindings.push({ mesh: object, index, column: col, weight: 1, target });
      matched.add(col);
    }
  });
  // Expressions by their own name first; a preset's ARKit stand-in only for a curve still unmatched after that.
  for (const nameOf of [(e) => e.name, (e) => e.alias]) {
    for (const expression of expressions) {
      const col = nameOf(expression) ? column.get(shapeKey(nameOf(expression))) : undefined;
      if (col === undefined || matched.has(col) || !expression.binds.length) continue;
      for (const bind of expression.binds) {
        bindings.push({ mesh: bind.mesh, index: bind.index, column: col, weight: bind.weight, target: expression.name });
      }
      matched.add(col);
    }
  }
  const missing = names.filter((_, i) => !matched.has(i));
  return { bindings, matched: names.filter((_, i) => matched.has(i)), missing,
           unmatchedTargets: [...unmatchedTargets], targetCount: targetNames.size };
}

// The ARKit curve that drives a VRM preset expression on an avatar without "perfect sync" expressions, so
// that any VRM opens its mouth and blinks (VRM 1.0 preset names, then VRM 0.x presetName values).
const PRESET_STAND_INS = { aa: 'jawOpen', blinkleft: 'eyeBlinkLeft', blinkright: 'eyeBlinkRight',
  a: 'jawOpen', blink_l: 'eyeBlinkLeft', blink_r: 'eyeBlinkRight' };
const standIn = (preset) => (preset ? PRESET_STAND_INS[String(preset).toLowerCase()] ?? null : null);

// VRM 0.x (extensions.VRM) and VRM 1.0 (extensions.VRMC_vrm) expressions as bind lists on three's meshes.
export function vrmExpressions(gltf) {
  const json = gltf.parser.json;
  const assoc = gltf.parser.associations;
  // three's meshes for one glTF mesh (one per primitive), not those of the node's children.
  const isPrimitiveOf = (object, mesh) => object.isMesh && assoc.get(object)?.meshes === mesh;
  const ofMesh = (mesh) => {
    const found = [];
    gltf.scene.traverse((object) => { if (isPrimitiveOf(object, mesh)) found.push(object); });
    return found;
  };
  const ofNode = (node) => {
    const mesh = json.nodes?.[node]?.mesh;
    let object = null;
    gltf.scene.traverse((o) => { if (!object && assoc.get(o)?.nodes === node) object = o; });
    if (!object || mesh === undefined) return [];
    if (isPrimitiveOf(object, mesh)) return [object];
    return object.children.filter((child) => isPrimitiveOf(child, mesh) && assoc.get(child).nodes === undefined);
  };
  const out = [];
  const vrm0 = json.extensions?.VRM?.blendShapeMaster?.blendShapeGroups ?? [];
  for (const group of vrm0) {
    const binds = (group.binds ?? []).flatMap((b) =>
      ofMesh(b.mesh).map((mesh) => ({ mesh, index: b.index, weight: (b.weight ?? 100) / 100 })));
    out.push({ name: group.name || group.presetName || '', alias: standIn(group.presetName), binds });
  }
  const vrm1 = json.extensions?.VRMC_vrm?.expressions ?? {};
  for (const [table, preset] of [[vrm1.preset ?? {}, true], [vrm1.custom ?? {}, false]]) {
    for (const [name, expression] of Object.entries(table)) {
      const binds = (expression.morphTargetBinds ?? []).flatMap((b) =>
        ofNode(b.node).map((mesh) => ({ mesh, index: b.index, weight: b.weight ?? 1 })));
      out.push({ name, alias: preset ? standIn(name) : null, binds });
    }
  }
  return { expressions: out, isVrm0: Boolean(json.extensions?.VRM) };
}
