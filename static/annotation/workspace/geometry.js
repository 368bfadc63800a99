/* Geometry helpers on lon/lat arrays as in GeoJSON: areas, simplification, split, outline
 * crossings. */
import { MAX_VERTICES, MIN_AREA_DEG2, t } from "./config.js";

export const round8 = x => Math.round(x * 1e8) / 1e8;
const ringArea = ring => {
  let a = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) a += (ring[j][0] + ring[i][0]) * (ring[j][1] - ring[i][1]);
  return Math.abs(a / 2);
};
export const polygonArea = rings => ringArea(rings[0]) - rings.slice(1).reduce((sum, r) => sum + ringArea(r), 0);
export const vertexCount = rings => rings.reduce((sum, r) => sum + r.length - 1, 0);
function inRing(pt, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i], [xj, yj] = ring[j];
    if ((yi > pt[1]) !== (yj > pt[1]) && pt[0] < (xj - xi) * (pt[1] - yi) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}
export const inPolygon = (pt, rings) => inRing(pt, rings[0]) && !rings.slice(1).some(r => inRing(pt, r));
export const bbox = points => points.reduce(([x0, y0, x1, y1], [x, y]) =>
  [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)], [Infinity, Infinity, -Infinity, -Infinity]);
export const bboxesMeet = (a, b) => a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
export function simplify(points, tolerance) {
  // Douglas-Peucker, iterative: keeps the ends and every vertex farther than ``tolerance`` from
  // the simplified line.
  if (points.length < 3) return points.slice();
  const keep = new Uint8Array(points.length);
  keep[0] = keep[points.length - 1] = 1;
  const stack = [[0, points.length - 1]];
  const tol2 = tolerance * tolerance;
  while (stack.length) {
    const [first, last] = stack.pop();
    const [ax, ay] = points[first], [bx, by] = points[last];
    const dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    let far = -1, farD = tol2;
    for (let i = first + 1; i < last; i++) {
      const [px, py] = points[i];
      let u = len2 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
      u = Math.max(0, Math.min(1, u));
      const qx = ax + u * dx - px, qy = ay + u * dy - py, d = qx * qx + qy * qy;
      if (d > farD) { far = i; farD = d; }
    }
    if (far > 0) { keep[far] = 1; stack.push([first, far], [far, last]); }
  }
  return points.filter((_, i) => keep[i]);
}
export const closed = ring => {
  const r = ring.map(([x, y]) => [round8(x), round8(y)]);
  const [a, b] = [r[0], r[r.length - 1]];
  if (a[0] !== b[0] || a[1] !== b[1]) r.push([a[0], a[1]]);
  return r;
};
export function cleanPieces(multipolygon, minArea) {
  // polygon-clipping output -> GeoJSON Polygon coordinates, without slivers and tiny holes.
  return multipolygon
    .map(rings => [rings[0], ...rings.slice(1).filter(r => ringArea(r) >= minArea)].map(closed))
    .filter(rings => polygonArea(rings) >= minArea);
}
function sideRegion(line, box) {
  // The part of ``box`` on one side of ``line``: the line, its ends carried straight on to the
  // box's edge, then the box's edge back (counter-clockwise) to where it started.
  const [x0, y0, x1, y1] = box, W = x1 - x0, H = y1 - y0;
  const exit = ([px, py], [qx, qy]) => {
    const dx = qx - px, dy = qy - py;
    let tMin = Infinity;
    if (dx > 0) tMin = Math.min(tMin, (x1 - qx) / dx); else if (dx < 0) tMin = Math.min(tMin, (x0 - qx) / dx);
    if (dy > 0) tMin = Math.min(tMin, (y1 - qy) / dy); else if (dy < 0) tMin = Math.min(tMin, (y0 - qy) / dy);
    return [qx + tMin * dx, qy + tMin * dy];
  };
  const along = ([x, y]) => {
    if (Math.abs(y - y0) < 1e-12) return x - x0;
    if (Math.abs(x - x1) < 1e-12) return W + (y - y0);
    if (Math.abs(y - y1) < 1e-12) return W + H + (x1 - x);
    return 2 * W + H + (y1 - y);
  };
  const start = exit(line[1], line[0]);
  const end = exit(line[line.length - 2], line[line.length - 1]);
  const corners = [[0, [x0, y0]], [W, [x1, y0]], [W + H, [x1, y1]], [2 * W + H, [x0, y1]]];
  const perimeter = 2 * (W + H);
  const a = along(end);
  let b = along(start);
  if (b <= a) b += perimeter;
  const walk = [];
  for (const lap of [0, perimeter]) {
    for (const [pos, pt] of corners) if (pos + lap > a && pos + lap < b) walk.push(pt);
  }
  return [start, ...line, end, ...walk, start];
}
export function splitRings(rings, line) {
  const all = [...rings[0], ...line];
  const [bx0, by0, bx1, by1] = bbox(all);
  const pad = Math.max(bx1 - bx0, by1 - by0) + 1e-6;
  const region = sideRegion(line, [bx0 - pad, by0 - pad, bx1 + pad, by1 + pad]);
  const pieces = [
    ...cleanPieces(polygonClipping.intersection([rings], [region]), MIN_AREA_DEG2),
    ...cleanPieces(polygonClipping.difference([rings], [region]), MIN_AREA_DEG2),
  ];
  const total = pieces.reduce((sum, p) => sum + polygonArea(p), 0);
  const area = polygonArea(rings);
  // A line that crosses itself makes a region that is not one side: refuse rather than guess.
  if (Math.abs(total - area) > 1e-6 * area + 1e-14) return null;
  return pieces;
}


// ---- outlines that cross themselves -----------------------------------------------------------
// Where the segments of a polygon's rings cross or touch (other than at the corner two
// neighbouring segments share): the points the server's rules would refuse as a
// self-intersection, found here so the interpreter sees where, in their language, at once.
function segmentMeet(p, p2, q, q2) {
  const rx = p2[0] - p[0], ry = p2[1] - p[1], sx = q2[0] - q[0], sy = q2[1] - q[1];
  const d = rx * sy - ry * sx;
  const qpx = q[0] - p[0], qpy = q[1] - p[1];
  const scale = Math.max(Math.abs(rx), Math.abs(ry), Math.abs(sx), Math.abs(sy)) || 1;
  if (Math.abs(d) < 1e-12 * scale * scale) {
    // Parallel: they meet only if they lie on one line and overlap.
    if (Math.abs(qpx * ry - qpy * rx) > 1e-12 * scale * scale) return null;
    const len2 = rx * rx + ry * ry || 1;
    const t0 = (qpx * rx + qpy * ry) / len2, t1 = ((q2[0] - p[0]) * rx + (q2[1] - p[1]) * ry) / len2;
    const lo = Math.max(0, Math.min(t0, t1)), hi = Math.min(1, Math.max(t0, t1));
    if (lo > hi) return null;
    const t = (lo + hi) / 2;
    return [p[0] + t * rx, p[1] + t * ry];
  }
  const t = (qpx * sy - qpy * sx) / d, u = (qpx * ry - qpy * rx) / d;
  if (t < 0 || t > 1 || u < 0 || u > 1) return null;
  return [p[0] + t * rx, p[1] + t * ry];
}
export function outlineCrossings(rings) {
  const segs = [];
  rings.forEach((ring, r) => {
    const n = ring.length - 1; // closed: the last position repeats the first
    for (let i = 0; i < n; i++) {
      const a = ring[i], b = ring[i + 1];
      if (a[0] === b[0] && a[1] === b[1]) continue; // a doubled click: no segment
      segs.push({ r, i, n, a, b, box: [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])] });
    }
  });
  const found = [];
  const seen = new Set();
  for (let x = 0; x < segs.length; x++) {
    const A = segs[x];
    for (let y = x + 1; y < segs.length; y++) {
      const B = segs[y];
      if (!bboxesMeet(A.box, B.box)) continue;
      const neighbours = A.r === B.r && (B.i === A.i + 1 || (A.i === 0 && B.i === A.n - 1));
      const pt = segmentMeet(A.a, A.b, B.a, B.b);
      if (!pt) continue;
      if (neighbours) {
        // Neighbours share a corner; they are at fault only if they fold back over each other.
        const shared = B.i === A.i + 1 ? A.b : A.a;
        if (Math.hypot(pt[0] - shared[0], pt[1] - shared[1]) < 1e-12) continue;
      }
      const key = `${pt[0].toFixed(9)},${pt[1].toFixed(9)}`;
      if (!seen.has(key)) { seen.add(key); found.push(pt); }
    }
  }
  return found;
}
export function repairPieces(rings) {
  // The drawn outline cut at its crossings into valid polygons (what freehand strokes get).
  return cleanPieces(polygonClipping.union(rings.map(closed)), MIN_AREA_DEG2)
    .filter(p => vertexCount(p) <= MAX_VERTICES);
}

export function fitVertices(rings) {
  // A mask traced pixel by pixel can have more corners than a polygon may: thin the stair steps
  // (by up to a few metres) until it fits, rather than have the server refuse it.
  let tol = 2e-6;
  let out = rings;
  while (vertexCount(out) > MAX_VERTICES && tol < 1e-3) {
    out = rings.map(r => closed(simplify(r, tol))).filter(r => r.length >= 4);
    tol *= 2;
  }
  return out;
}
